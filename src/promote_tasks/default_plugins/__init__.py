"""Built-in behaviour, registered through the same hooks a team's plugin uses."""
