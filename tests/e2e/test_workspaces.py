"""Users' JupyterLab servers: their own accounts, their own homes, code that runs."""
import pwd
import stat
import os

from support.kernel import run_code
from support.platform import api_token, login, start_server, stop_server


def test_two_users_run_as_two_accounts_and_cannot_read_each_other(platform):
    alice, alice_pw = platform.add_user("alice")
    bob, bob_pw = platform.add_user("bob")
    tokens = {}
    for name, pw in ((alice, alice_pw), (bob, bob_pw)):
        session, _ = login(platform, name, pw)
        tokens[name] = api_token(platform, session, name)
        start_server(platform, tokens[name], name)
    try:
        who_a = run_code(platform.url, alice, tokens[alice], "import getpass, os; print(getpass.getuser(), os.getuid())")
        who_b = run_code(platform.url, bob, tokens[bob],
                         "import getpass, os, pathlib; p = pathlib.Path.home() / 'secret.txt'; "
                         "p.write_text('bob only'); print(getpass.getuser(), os.getuid(), p)")
        assert who_a["status"] == "ok" and who_b["status"] == "ok", (who_a, who_b)
        user_a, uid_a = who_a["stdout"].split()[:2]
        user_b, uid_b, secret = who_b["stdout"].split()[:3]
        assert user_a == f"astrago-{alice}" and user_b == f"astrago-{bob}"
        assert uid_a != uid_b and int(uid_a) != 0 and int(uid_b) != 0
        home_b = pwd.getpwnam(user_b).pw_dir
        assert stat.S_IMODE(os.stat(home_b).st_mode) == 0o700

        attempt = run_code(platform.url, alice, tokens[alice], f"print(open({secret!r}).read())")
        assert attempt["status"] == "error"
        assert attempt["error"].startswith("PermissionError")
        assert "bob only" not in attempt["stdout"]
    finally:
        for name in (alice, bob):
            stop_server(platform, tokens[name], name)


def test_a_user_cannot_use_another_users_server(platform):
    carol, carol_pw = platform.add_user("carol")
    dave, dave_pw = platform.add_user("dave")
    s_carol, _ = login(platform, carol, carol_pw)
    s_dave, _ = login(platform, dave, dave_pw)
    t_carol = api_token(platform, s_carol, carol)
    t_dave = api_token(platform, s_dave, dave)
    start_server(platform, t_carol, carol)
    try:
        import requests

        r = requests.get(f"{platform.url}/user/{carol}/api/contents", headers={"Authorization": f"token {t_dave}"},
                         timeout=30)
        assert r.status_code == 403
        r = requests.delete(f"{platform.url}/hub/api/users/{carol}/server", headers={"Authorization": f"token {t_dave}"},
                            timeout=30)
        assert r.status_code in (403, 404)
        ok = requests.get(f"{platform.url}/user/{carol}/api/contents", headers={"Authorization": f"token {t_carol}"},
                          timeout=30)
        assert ok.status_code == 200
    finally:
        stop_server(platform, t_carol, carol)


def test_rest_api_spawn_with_an_unknown_slice_is_refused_and_allocates_nothing(platform):
    import requests

    erin, pw = platform.add_user("erin")
    session, _ = login(platform, erin, pw)
    token = api_token(platform, session, erin)
    h = {"Authorization": f"token {token}"}
    r = requests.post(f"{platform.url}/hub/api/users/{erin}/server", json={"slice": "9g.999gb"}, headers=h, timeout=60)
    # the spawn fails fast with the reason; the user has no server afterwards
    assert r.status_code in (400, 500), r.text
    assert "no MIG 9g.999gb" in r.text or "not a slice" in r.text or "9g.999gb" in r.text
    model = requests.get(f"{platform.url}/hub/api/users/{erin}", headers=h, timeout=30).json()
    assert "" not in model["servers"]
    # and a good spawn still works afterwards
    start_server(platform, token, erin)
    stop_server(platform, token, erin)
