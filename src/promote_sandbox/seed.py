"""The seeded repository: one app, three environment branches, a plan and its feature PR.

Every environment's head is already deployed and validated, as after an earlier successful
promotion, so a rollback always has a known-good target.
"""

from __future__ import annotations

from dataclasses import dataclass

from promote_sandbox.ci import CI
from promote_sandbox.gitrepo import GitRepo
from promote_sandbox.gitrepo import Ident
from promote_sandbox.gitrepo import TreeEntry
from promote_sandbox.scenario import Scenario
from promote_sandbox.store import BOT_LOGIN
from promote_sandbox.store import Pull
from promote_sandbox.store import Store

README = """# shop

A tiny app that lives in the promote-tasks sandbox. Changes reach it through plans:
`plans/doing/<id>.md` describes the work, `feature/<id>` carries the code, and pull requests
carry it through the environment branches `dev`, `test` and `main`.
"""

APP_BEFORE = "shop v1\n"
APP_AFTER = "shop v1\nHello, shopper!\n"

MANUAL_TEST = """# Manual test checklist

Run through this list in the environment under test, then approve or reject.

- [ ] The front page loads without errors
- [ ] The change described by the plan behaves as the plan says
- [ ] Checkout still works end to end
- [ ] Nothing unrelated looks different
"""


def deploy_workflow(environments: tuple[str, ...]) -> str:
    options = "".join(f"          - {env}\n" for env in environments)
    branches = ", ".join(environments)
    return f"""name: Deploy
run-name: Deploy ${{{{ inputs.sha || github.sha }}}} to ${{{{ inputs.environment || github.ref_name }}}}

on:
  push:
    branches: [{branches}]
    paths-ignore:
      - 'plans/**'
  workflow_dispatch:
    inputs:
      environment:
        description: Environment to deploy to
        required: true
        type: choice
        options:
{options}      sha:
        description: Commit to deploy (defaults to the head of the dispatched branch)
        required: false
        type: string

permissions:
  contents: read
  deployments: write

jobs:
  deploy:
    runs-on: ubuntu-latest
    environment:
      name: ${{{{ inputs.environment || github.ref_name }}}}
      url: ${{{{ steps.deploy.outputs.url }}}}
    steps:
      - uses: actions/checkout@v5
        with:
          ref: ${{{{ inputs.sha || github.sha }}}}
      - id: deploy
        name: Deploy
        run: ./deploy.sh "${{{{ inputs.environment || github.ref_name }}}}"
"""


SMOKE_WORKFLOW = """name: Smoke tests
run-name: Smoke tests for ${{ github.event.deployment.environment }} at ${{ github.event.deployment.sha }}

on:
  deployment_status:

permissions:
  contents: read

jobs:
  smoke:
    if: github.event.deployment_status.state == 'success'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
        with:
          ref: ${{ github.event.deployment.sha }}
      - name: Smoke tests
        run: curl --fail --retry 3 "${{ github.event.deployment_status.environment_url }}"
"""

PROMOTE_TOML = """# promote-tasks settings for this repository (the sandbox seeds only the reviewers)
reviewers = ["rita"]
"""


def plan_text(plan_id: str, title: str, priority: int = 2) -> str:
    return (
        f"---\nid: {plan_id}\ntitle: {title}\npriority: {priority}\n---\n\n"
        "Greet shoppers on the front page.\n\n"
        "## Done when\n\n- the front page says hello\n"
    )


def plan_title(plan_id: str) -> str:
    if plan_id == "add-greeting":
        return "Add a greeting to the app"
    return plan_id.replace("-", " ").capitalize()


@dataclass(frozen=True)
class History:
    """The two commits every seeded repository starts from."""

    initial: str
    feature: str


def author_ident(scenario: Scenario, when: int) -> Ident:
    spec = next(u for u in scenario.users if u.login == scenario.author)
    email = spec.email or f"{spec.login}@users.noreply.example.com"
    return Ident(spec.name or spec.login, email, when)


def write_history(repo: GitRepo, scenario: Scenario, when: int) -> History:
    """The git side of the seed: files, environment branches and the feature branch."""
    plan_id = scenario.plan_id
    title = plan_title(plan_id)
    files = {
        "README.md": README,
        "app.txt": APP_BEFORE,
        "promote.toml": PROMOTE_TOML.replace('"rita"', f'"{scenario.reviewer}"'),
        ".github/workflows/deploy.yml": deploy_workflow(scenario.environments),
        ".github/workflows/smoke.yml": SMOKE_WORKFLOW,
        ".github/promote/manual-test.md": MANUAL_TEST,
        f"plans/doing/{plan_id}.md": plan_text(plan_id, title),
    }
    edits: dict[str, TreeEntry | None] = {
        path: TreeEntry("100644", "blob", repo.hash_blob(text.encode()), None, path)
        for path, text in files.items()
    }
    tree = repo.build_tree(None, edits)
    who = author_ident(scenario, when)
    initial = repo.commit_tree(tree, [], "Start the shop\n", who, who)
    for env in scenario.environments:
        repo.set_ref(f"refs/heads/{env}", initial)
    if scenario.default_branch not in scenario.environments:
        repo.set_ref(f"refs/heads/{scenario.default_branch}", initial)
    later = author_ident(scenario, when + 600)
    app = repo.hash_blob(APP_AFTER.encode())
    feature_tree = repo.build_tree(
        tree, {"app.txt": TreeEntry("100644", "blob", app, None, "app.txt")}
    )
    feature = repo.commit_tree(feature_tree, [initial], f"{title}\n", later, later)
    repo.set_ref(f"refs/heads/feature/{plan_id}", feature)
    repo.set_ref("refs/pull/1/head", feature)
    return History(initial, feature)


def seed(store: Store, ci: CI, history: History) -> None:
    """The GitHub side of the seed: runs, deployments and verdicts that say it was promoted."""
    scenario = store.scenario
    author = scenario.author
    plan_id = scenario.plan_id
    title = plan_title(plan_id)
    initial, feature = history.initial, history.feature
    store.known_refs = store.repo.refs("refs/heads/")

    ci.quiet = True
    try:
        for env in scenario.environments:
            store.ensure_environment(env)
            seed_promoted(store, ci, env, initial)
        for env, reviewers in scenario.required_reviewers.items():
            store.ensure_environment(env).reviewers = list(reviewers)
    finally:
        ci.quiet = False

    pull = Pull(
        id=store.new_id(),
        head_ref=f"feature/{plan_id}",
        head_sha=feature,
        base_ref=scenario.environments[0],
        base_sha=initial,
    )
    store.new_issue(
        title, f"Implements plan `{plan_id}`.\n\nPlan: plans/doing/{plan_id}.md", author, pull
    )


def seed_promoted(store: Store, ci: CI, env: str, sha: str) -> None:
    """A finished deploy run, deployment, smoke run and the tool's verdicts for ``env`` at ``sha``."""
    run = ci.start_deploy(env, env, sha, sha, "push", store.scenario.author)
    ci.attempts[(env, "deploy")] -= 1
    run.will_fail = run.will_hang = False
    while run.status != "completed":
        ci.step(run)
    assert run.deployment_id is not None
    deployment = store.deployments[run.deployment_id]
    smoke = ci.start_smoke(deployment, BOT_LOGIN)
    ci.attempts[(env, "smoke")] -= 1
    smoke.will_fail = smoke.will_hang = False
    while smoke.status != "completed":
        ci.step(smoke)
    ci.health_seen.add(deployment.id)
    author = store.scenario.author
    checks = ["health", "smoke"]
    if env == store.scenario.production:
        monitor = ci.start_monitor(env, sha)
        ci.attempts[(env, "monitor")] -= 1
        ci.monitor_countdown.pop(monitor.id, None)
        checks.append("monitor")
    if len(store.scenario.environments) > 1 and env == store.scenario.environments[1]:
        checks.append("manual")
    base = store.base_url
    for check in checks:
        store.add_commit_status(
            sha,
            "success",
            f"promote/{env}/{check}",
            author,
            description=f"{check} passed",
            target_url=f"{base}/_sandbox/health/{env}" if check == "health" else None,
        )
    store.add_commit_status(
        sha, "success", f"promote/{env}", author, description=f"validated in {env}", target_url=None
    )
