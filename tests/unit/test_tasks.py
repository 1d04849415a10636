"""The tasks as an administrator runs them: `invoke ...` in a fresh checkout, real files, real output."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

import pytest

from classhub import credentials
from classhub.paths import Paths
from tests.conftest import PROJECT, clean_environ, invoke, plan_rows, snapshot

TASKS = [
    "check",
    "down",
    "engine",
    "login",
    "logs",
    "nginx",
    "reset-password",
    "setup",
    "status",
    "up",
]


def ok(result) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result) -> str:
    """A clean failure: exit 1, a message starting with 'error:', no traceback."""
    assert result.returncode == 1, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr, result.stderr
    return result.stderr


def test_list_shows_every_task_with_a_summary(checkout: Paths):
    out = ok(invoke(checkout, "--list"))
    for name in TASKS:
        assert re.search(rf"^  {re.escape(name)}\s+\S", out, re.MULTILINE), name


def every_task() -> list[str]:
    from invoke import Collection

    import tasks

    return sorted(Collection.from_module(tasks).task_names)


def test_the_readme_guides_to_every_task_and_the_docs_describe_each():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    reference = (PROJECT / "docs" / "tasks.md").read_text(encoding="utf-8")
    for name in every_task():
        assert f"./classhub.sh {name}" in readme or name in ("engine", "setup"), name
        assert f"| `invoke {name}" in reference, name
    assert "`./classhub.sh` (that is, `engine`, then `setup`)" in readme


def test_the_readme_is_a_short_guide_whose_links_all_lead_somewhere():
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15 * 1024
    linked = set(re.findall(r"\]\(([^)#]+)", readme))
    docs = {f"docs/{p.name}" for p in (PROJECT / "docs").glob("*.md")}
    assert docs <= linked, docs - linked  # every reference page is reachable from the guide
    for target in linked:
        assert target.startswith("http") or (PROJECT / target).exists(), target


def test_dry_run_changes_nothing(checkout: Paths):
    before = snapshot(checkout.root)
    out = ok(invoke(checkout, "setup", "--files-only", "--dry-run"))
    assert snapshot(checkout.root) == before
    assert "Dry run: nothing was changed (7 step(s) would change something)." in out
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert "create from .env.example" in rows[".env"]
    assert "create (JupyterHub cookie secret)" in rows["secrets/cookie_secret"]
    assert "make 5" in rows["passwords"]


def test_setup_then_setup_again_changes_nothing(checkout: Paths):
    result = invoke(checkout, "setup", "--files-only")
    out = ok(result)
    assert "Done: 7 step(s) changed something." in out
    assert "hashing passwords: 5/5" in result.stderr
    # what setup made
    assert checkout.env_file.read_text() == checkout.env_example.read_text()
    assert checkout.env_file.stat().st_mode & 0o777 == 0o600
    assert checkout.secrets_dir.stat().st_mode & 0o777 == 0o700
    for name in ("cookie_secret", "proxy_auth_token", "classhub_api_token", "credentials.json"):
        assert (checkout.secrets_dir / name).stat().st_mode & 0o777 == 0o600, name
    assert not (checkout.secrets_dir / "postgres_password").exists()
    hub = json.loads(checkout.hub_file.read_text())
    assert sorted(hub["users"]) == ["hub-admin", "student1", "student2", "student3", "student4"]
    assert hub["users"]["hub-admin"]["admin"] is True
    assert hub["groups"]["team-1"]["members"] == ["student1", "student2"]
    creds = credentials.load(checkout)
    for name, entry in hub["users"].items():
        assert credentials.verify(creds[name].password, entry["password_hash"])
    # it ends with the nginx block and the admin's login
    assert "location /hub/ {" in out
    assert f"Password: {creds['hub-admin'].password}" in out
    assert "Username: hub-admin" in out

    before = snapshot(checkout.root)
    again = ok(invoke(checkout, "setup", "--files-only"))
    assert "Nothing to change: everything is already set up." in again
    assert snapshot(checkout.root) == before


def test_setup_picks_up_a_new_user_and_keeps_old_passwords(checkout: Paths):
    ok(invoke(checkout, "setup", "--files-only"))
    old = credentials.load(checkout)
    with checkout.userlist.open("a") as f:
        f.write("newcomer team-2\n")
    status = ok(invoke(checkout, "status"))
    assert "5 of 6 users have one" in status and "2 step(s) pending" in status
    out = ok(invoke(checkout, "setup", "--files-only"))
    assert "Done: 2 step(s) changed something." in out
    new = credentials.load(checkout)
    assert {k: new[k] for k in old} == old
    assert "newcomer" in json.loads(checkout.hub_file.read_text())["users"]
    assert "In step with the settings." in ok(invoke(checkout, "status"))


def test_setup_tightens_loose_permissions_without_rewriting(checkout: Paths):
    ok(invoke(checkout, "setup", "--files-only"))
    checkout.hub_file.chmod(0o644)
    token = checkout.secrets_dir / "proxy_auth_token"
    token.chmod(0o640)
    value = token.read_text()
    status = ok(invoke(checkout, "status"))
    assert "up to date, permissions too open" in status and "present, mode 0640" in status
    ok(invoke(checkout, "setup", "--files-only"))
    assert checkout.hub_file.stat().st_mode & 0o777 == 0o600
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == value
    assert "In step with the settings." in ok(invoke(checkout, "status"))


def test_setup_keeps_existing_secrets_and_env(checkout: Paths):
    checkout.env_file.write_text("HUB_NAME=math\n")
    checkout.secrets_dir.mkdir(exist_ok=True)
    cookie = checkout.secrets_dir / "cookie_secret"
    cookie.write_text("ab" * 32 + "\n")
    out = ok(invoke(checkout, "setup", "--files-only"))
    assert cookie.read_text() == "ab" * 32 + "\n"
    assert checkout.env_file.read_text() == "HUB_NAME=math\n"
    assert "Hub 'math' at http://127.0.0.1:8000/math/" in out


def test_login_variants(checkout: Paths):
    ok(invoke(checkout, "setup", "--files-only"))
    creds = credentials.load(checkout)
    out = ok(invoke(checkout, "login"))
    assert out.splitlines() == [
        "  URL:      http://127.0.0.1:8000/hub/",
        "  Username: hub-admin",
        f"  Password: {creds['hub-admin'].password}",
    ]
    out = ok(invoke(checkout, "login", "--name", "Student3"))
    assert f"  Password: {creds['student3'].password}" in out and "Username: student3" in out
    rows = list(csv.reader(io.StringIO(ok(invoke(checkout, "login", "--csv")))))
    assert rows[0] == ["username", "password"]
    assert rows[1:] == [[name, creds[name].password] for name in
                        ["hub-admin", "student1", "student2", "student3", "student4"]]  # fmt: skip
    nobody = fails(invoke(checkout, "login", "--name", "nobody"))
    assert "not on the roster: 'nobody'" in nobody and "no name on the roster is close" in nobody
    typo = fails(invoke(checkout, "login", "--name", "studnet3"))  # two letters swapped
    assert "'studnet3'; did you mean student3?" in typo, typo
    assert "add-user studnet3" not in typo and "invoke add-user NAME" in typo
    assert "--csv prints the whole roster" in fails(
        invoke(checkout, "login", "--csv", "--name", "student1")
    )


def test_reader_that_stops_early_gets_no_traceback(checkout: Paths):
    ok(invoke(checkout, "setup", "--files-only"))
    with subprocess.Popen(
        [sys.executable, "-m", "invoke", "setup", "--files-only"],
        cwd=checkout.root,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        proc.stdout.close()  # like `| head -0`: nobody reads what setup prints
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_setup_without_an_engine_says_what_to_do_and_writes_nothing(checkout: Paths):
    before = snapshot(checkout.root)
    for args in (
        ["setup"], ["up"], ["down"], ["logs"], ["sync"],
        ["remove-user", "student1"], ["remove-user", "student1", "--purge", "--yes"],
    ):  # fmt: skip
        err = fails(invoke(checkout, *args))
        assert "no Docker engine answers at unix:///nonexistent/docker.sock" in err, args
        assert "invoke engine" in err
    assert snapshot(checkout.root) == before
    # The plan still shows: the host's side, and the engine's row saying what is needed.
    for args in (["setup", "--dry-run"], ["status"]):
        out = ok(invoke(checkout, *args))
        assert "No Docker engine answers" in out and "secrets/cookie_secret" in out, args
        state, action = plan_rows(out)["Docker engine"]
        assert state == "none answers", args
        assert "needed at unix:///nonexistent/docker.sock: invoke engine installs" in action
    assert snapshot(checkout.root) == before


def test_the_admin_user_cannot_be_removed(checkout: Paths):
    before = snapshot(checkout.root)
    err = fails(invoke(checkout, "remove-user", "HUB-ADMIN"))
    assert "hub-admin is this hub's ADMIN_USER" in err and "set another ADMIN_USER" in err
    assert snapshot(checkout.root) == before


def test_a_group_cannot_take_the_shared_or_users_folder(checkout: Paths):
    (checkout.root / ".env").write_text("SHARED_DATA=course\nADMIN_SEES_USERS=true\n")
    (checkout.root / "userlist").write_text("ann shared\nbob users\n")
    err = fails(invoke(checkout, "check"))
    assert "userlist:1: group 'shared' would have the same folder as SHARED_DATA" in err
    assert "userlist:2: group 'users' would have the same folder as ADMIN_SEES_USERS" in err


def test_default_groups_must_be_groups_of_the_roster(checkout: Paths):
    (checkout.root / ".env").write_text(
        "AUTHENTICATOR=native\nOPEN_TO_ALL=true\nDEFAULT_GROUPS=guests team-1\n"
    )
    (checkout.root / "userlist").write_text("ann team-1\n")
    err = fails(invoke(checkout, "check"))
    assert ".env:3" in err and "DEFAULT_GROUPS names group 'guests'" in err
    assert "invoke add-group guests" in err and "'team-1'" not in err
    (checkout.root / "userlist").write_text("ann team-1\ngroup: guests\n")
    ok(invoke(checkout, "check"))


def test_single_sign_on_hubs_hand_out_no_passwords(checkout: Paths):
    """With oidc or github the hub takes no passwords: login says where to sign in instead, and
    the tasks that hand out or make passwords say why they do not apply (rehearse before it
    reaches Docker)."""
    ok(invoke(checkout, "setup", "--files-only"))
    env = checkout.root / ".env"
    env.write_text(env.read_text() + "AUTHENTICATOR=oidc\nOAUTH_CLIENT_ID=hub-1\n"
                   "OIDC_ISSUER=https://login.uni.edu/realms/x\n")  # fmt: skip
    before = snapshot(checkout.root)
    out = ok(invoke(checkout, "login", "--name", "student1"))
    assert "Username: student1" in out
    assert "Password: none on this hub: sign in with login.uni.edu (AUTHENTICATOR=oidc)" in out
    for args in (("login", "--csv"), ("reset-password", "student1"), ("rehearse", "--users", "2")):
        err = fails(invoke(checkout, *args))
        assert "with AUTHENTICATOR=oidc people sign in with login.uni.edu" in err, err
    assert "no passwords; rehearse on a hub with AUTHENTICATOR=roster or native" in err
    assert snapshot(checkout.root) == before
    env.write_text(env.read_text().replace("AUTHENTICATOR=oidc", "AUTHENTICATOR=github"))
    out = ok(invoke(checkout, "login"))
    assert "Password: none on this hub: sign in with GitHub (AUTHENTICATOR=github)" in out


def test_login_before_setup_says_to_run_setup(checkout: Paths):
    err = fails(invoke(checkout, "login"))
    assert "'hub-admin' has no password yet; run invoke setup" in err


def test_reset_password(checkout: Paths):
    ok(invoke(checkout, "setup", "--files-only"))
    old = credentials.load(checkout)
    hub_before = checkout.hub_file.read_text()

    before = snapshot(checkout.root)
    ok(invoke(checkout, "reset-password", "student1", "--dry-run"))
    assert snapshot(checkout.root) == before

    out = ok(invoke(checkout, "reset-password", "student1"))
    new = credentials.load(checkout)
    assert new["student1"].password != old["student1"].password
    assert f"Password: {new['student1'].password}" in out
    assert all(new[n] == old[n] for n in old if n != "student1")
    hub = json.loads(checkout.hub_file.read_text())
    assert checkout.hub_file.read_text() != hub_before
    assert credentials.verify(new["student1"].password, hub["users"]["student1"]["password_hash"])
    assert not credentials.verify(
        old["student1"].password, hub["users"]["student1"]["password_hash"]
    )
    assert "not on the roster: 'ghost'" in fails(invoke(checkout, "reset-password", "ghost"))
    typo = fails(invoke(checkout, "reset-password", "student"))
    assert "did you mean student1 or student2 or student3?" in typo, typo


def test_nginx_prints_the_block_for_the_settings(checkout: Paths):
    checkout.env_file.write_text("HUB_NAME=math8660\nPORT=8001\n")
    out = ok(invoke(checkout, "nginx"))
    assert "location /math8660/ {" in out
    assert "proxy_pass http://127.0.0.1:8001;" in out


# Bad input: one clear message, exit 1, no traceback, and nothing written.
BAD_INPUTS = {
    "bad port": (".env", "PORT=abc\n", ".env:1: PORT=abc is not a port number"),
    "bad memory": (".env", "MEM_LIMIT=lots\n", ".env:1: MEM_LIMIT=lots is not a size"),
    "unparsable .env line": (".env", "PORT 8000\n", ".env:1: this line cannot be read"),
    "empty userlist": ("userlist", "# nobody yet\n", "userlist: lists no users"),
    "duplicate user": (
        "userlist",
        "ann\nAnn\n",
        "userlist:2: user 'Ann' is already listed on line 1",
    ),
    "userlist not utf-8": (
        "userlist",
        b"ann\nren\xe9 team-1\n",
        "userlist:2: is not UTF-8 text (byte 0xe9 on this line cannot be decoded)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly_and_writes_nothing(checkout: Paths, case: str):
    name, content, message = BAD_INPUTS[case]
    target = checkout.root / name
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(checkout.root)
    for args in (["setup"], ["setup", "--dry-run"], ["check"], ["status"], ["login"]):
        err = fails(invoke(checkout, *args))
        assert message in err, (args, err)
        assert "nothing was changed" in err
    assert snapshot(checkout.root) == before


def test_missing_userlist_and_unreadable_env(checkout: Paths):
    checkout.userlist.unlink()
    checkout.env_file.mkdir()
    before = snapshot(checkout.root)
    err = fails(invoke(checkout, "setup", "--files-only"))
    assert ".env: is a folder, not a file" in err
    assert "userlist: the file does not exist; create it with one user a line" in err
    assert snapshot(checkout.root) == before


def test_unknown_key_warning_is_shown_even_when_another_line_is_wrong(checkout: Paths):
    checkout.env_file.write_text("PROT=8001\nPORT=x\n")
    err = fails(invoke(checkout, "check"))
    assert ".env:2: PORT=x is not a port number" in err
    assert ".env:1: unknown key PROT is ignored; did you mean PORT?" in err


def test_files_saved_by_windows_editors_are_read(checkout: Paths):
    checkout.env_file.write_bytes(b"\xef\xbb\xbfHUB_NAME=math\r\nPORT=8001\r\n")
    checkout.userlist.write_bytes(b"\xef\xbb\xbfalice team-1\r\nbob admin\r\n")
    out = ok(invoke(checkout, "check"))
    assert "Hub 'math' at http://127.0.0.1:8001/math/" in out
    assert "3 users (2 admins), 1 group." in out


def test_environment_overrides_are_reported(checkout: Paths):
    out = ok(invoke(checkout, "check", env=clean_environ(PORT="8123")))
    assert "published on 127.0.0.1:8123" in out
    assert "From the environment, overriding .env.example: PORT." in out


def test_malformed_secret_stops_setup_before_anything_is_written(checkout: Paths):
    checkout.secrets_dir.mkdir(exist_ok=True)
    (checkout.secrets_dir / "proxy_auth_token").write_text("short\n")
    before = snapshot(checkout.root)
    err = fails(invoke(checkout, "setup", "--files-only"))
    assert "secrets/proxy_auth_token: does not hold a valid proxy auth token" in err
    assert snapshot(checkout.root) == before


def test_add_group_with_a_member_not_on_the_roster_names_the_closest_and_writes_nothing(
    checkout: Paths,
):
    before = snapshot(checkout.root)
    err = fails(invoke(checkout, "add-group", "team-9", "--members", "student1,studnet2"))
    assert "not on the roster: 'studnet2'" in err and "did you mean student2?" in err, err
    assert "add-user studnet2" not in err
    assert snapshot(checkout.root) == before


def test_setup_ends_saying_how_students_reach_the_hub():
    from classhub.commands import how_students_reach
    from classhub.inputs.parsers import Context
    from classhub.inputs.settings import load_settings

    def said(env: str) -> str:
        settings, problems, _ = load_settings(env, ".env", {}, Context(PROJECT, 2))
        assert not problems, problems
        return how_students_reach(Paths(PROJECT), settings)

    default = said("")  # PROXY=none on 127.0.0.1: through the host's nginx, not yet opened
    assert "through your nginx: it answers only on this server (127.0.0.1:8000)" in default
    assert "That URL works only on this server" in default and "PROXY=nginx" in default
    behind = said("PUBLIC_URL=https://jupyter.uni.edu/hub/\n")
    assert "then they open https://jupyter.uni.edu/hub/." in behind
    assert "That URL works only" not in behind
    bare = said("BIND_ADDRESS=0.0.0.0\nPUBLIC_URL=http://jupyter.uni.edu:8000/hub/\n")
    assert bare.startswith("Students open http://jupyter.uni.edu:8000/hub/: the hub's own port")
    assert "plain HTTP" in bare and "\n" not in bare
    bundled = said("PROXY=nginx\nPUBLIC_URL=https://jupyter.uni.edu/hub/\n")
    assert bundled.startswith("Students open https://jupyter.uni.edu/hub/: the bundled nginx")
    assert "self-signed" in bundled and "\n" not in bundled


def test_the_plan_fits_in_100_columns_and_setup_shows_only_what_changes():
    from classhub import plan
    from classhub.plan import Step

    long_state = "lacks DNS:*.jupyter.physics.example.edu, DNS:jupyter.physics.example.edu"
    long_action = "make a self-signed certificate and key for " + ", ".join(
        ["DNS:x.example.edu"] * 6
    )
    steps = [
        Step("secrets/tls/selfsigned.crt", long_state, long_action, lambda: None),
        Step("hub", "running"),
        Step("notebook image classhub-notebook:latest", "up to date"),
    ]
    text = plan.table(steps)
    assert max(len(line) for line in text.splitlines()) <= plan.WIDTH
    rows = plan_rows(text)
    state, action = rows["secrets/tls/selfsigned.crt"]

    def bare(words: str) -> str:
        return "".join(words.split())

    assert bare(state) == bare(long_state) and bare(action) == bare(long_action)  # wrapped, not cut
    assert rows["hub"] == ("running", "none")
    short = plan.table(steps[1:])  # what fits is laid out as before: one line a row
    assert len(short.splitlines()) == 3
    brief = plan.brief(steps)
    assert "secrets/tls/selfsigned.crt" in brief and "hub " not in brief
    assert brief.endswith("(and 2 other components checked: as they should be)")
    assert plan.brief(steps[1:]) == ""


def test_setup_repeats_its_warnings_at_the_end(checkout: Paths):
    checkout.env_file.write_text("MEM_LIMT=4G\n")  # a typo of MEM_LIMIT: a warning, not an error
    result = invoke(checkout, "setup", "--files-only")
    assert result.returncode == 0, result.stderr
    assert "MEM_LIMT" in result.stderr  # said when read ...
    tail = result.stdout.rstrip().split("Warnings (said above too):\n", 1)
    assert len(tail) == 2 and "MEM_LIMT" in tail[1] and "MEM_LIMIT" in tail[1]  # ... and at the end
    again = ok(invoke(checkout, "setup", "--files-only"))
    assert "Nothing to change: everything is already set up." in again
    assert "COMPONENT" not in again  # every row as it should be: no table (--verbose shows it)
    assert "COMPONENT" in ok(invoke(checkout, "setup", "--files-only", "--verbose"))
