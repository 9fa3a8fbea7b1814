"""Job pages and the one navigation bar in Chromium, against a real embedded AstraGo.

Real: hub, proxy, service, Keycloak logins, job processes; the GPU inventory is a static file
(no GPU here). Screenshots land in test-artifacts/.
"""
import re
import time

from support.fixtures import browser_login
from jobs_support import JobUser, admin_api
from jobs_support import jobs_platform, keep_platform_log  # noqa: F401 (fixtures)

NAV = "#astrago-nav"


def nav_links(page):
    return page.eval_on_selector_all(f"{NAV} a", "els => els.map(a => [a.textContent.trim(), a.getAttribute('href')])")


def test_job_page_live_log_cancel_and_human_times(jobs_platform, chromium, artifacts):
    p = jobs_platform
    u = JobUser(p, "pager")
    job = u.submit(kind="command", name="ticker",
                   command="for i in $(seq 1 600); do echo tick-$i; sleep 0.2; done")
    u.wait_running_process(job["id"])
    page = browser_login(chromium, p, u.name, u.password)
    resp = page.goto(p.service_url + f"jobs/{job['id']}")
    assert resp.status == 200
    assert page.locator("h1").inner_text().startswith("ticker")
    page.wait_for_function("document.getElementById('log').textContent.includes('tick-3')", timeout=30000)
    assert page.locator("#log-state").inner_text() == "live"
    assert page.locator("#job-status .pill").inner_text() == "running"
    reason = page.locator("#job-reason").inner_text()
    assert "cgroup" not in reason and "limits" not in reason and reason.startswith("Running"), reason
    # times are human, with the exact time on hover
    submitted = page.locator("#job-times time").first
    assert re.fullmatch(r"just now|\d+ (second|minute)s? ago", submitted.inner_text()), submitted.inner_text()
    assert re.search(r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$", submitted.get_attribute("title"))
    assert "{" not in page.locator("#job-spec").inner_text()  # no JSON or dict text
    page.screenshot(path=str(artifacts / "job-page-running.png"), full_page=True)

    # the log from an offset: only what follows it
    deadline = time.monotonic() + 30
    text = u.api("GET", f"jobs/{job['id']}/log").text  # the runner's first line, then the ticks
    while "tick-10\n" not in text and time.monotonic() < deadline:  # ticks come every 0.2 s
        time.sleep(0.3)
        text = u.api("GET", f"jobs/{job['id']}/log").text
    page.fill("#log-from input[name=offset]", str(len(text[:text.index("tick-10\n")].encode())))
    page.click("#log-from button")
    page.wait_for_function("document.getElementById('log').textContent.startsWith('tick-10\\n')", timeout=30000)

    page.click("#cancel")
    page.wait_for_selector("#msg.done")
    page.wait_for_function("document.querySelector('#job-status .pill').dataset.status === 'CANCELLED'")
    page.wait_for_function("document.getElementById('log-state').textContent.startsWith('ended')", timeout=30000)
    assert page.locator("#cancel").is_hidden()
    assert u.job(job["id"])["status"] == "CANCELLED"
    # the history and the times follow without a reload
    page.wait_for_function("document.querySelector('#job-history tbody tr:last-child .pill').dataset.status"
                           " === 'CANCELLED'", timeout=15000)
    assert page.locator("#job-finished time").count() == 1
    page.screenshot(path=str(artifacts / "job-page-cancelled.png"), full_page=True)

    # the list: a link to the page, filters and human times
    page.goto(p.service_url + "jobs?status=CANCELLED")
    row = page.locator(f'tr[data-job="{job["id"]}"]')
    assert row.count() == 1 and row.locator("time").get_attribute("title").endswith("UTC)")
    assert page.locator("#jobs tbody tr").count() == 1
    page.goto(p.service_url + "jobs?status=RUNNING")
    assert page.locator(f'tr[data-job="{job["id"]}"]').count() == 0
    page.screenshot(path=str(artifacts / "my-jobs.png"), full_page=True)

    # run it again from its page: a new job with the same spec
    page.goto(p.service_url + f"jobs/{job['id']}")
    page.click("#resubmit")
    page.wait_for_url(re.compile(r".*/jobs/(?!" + job["id"] + r")[0-9a-f]{12}$"))
    again = page.url.rsplit("/", 1)[1]
    assert u.job(again)["command"] == job["command"]
    page.wait_for_function("document.getElementById('log').textContent.includes('tick-1')", timeout=30000)
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#job-status .pill').dataset.status === 'CANCELLED'")
    page.close()


def test_another_user_gets_403_on_a_job_page_and_an_admin_sees_it(jobs_platform, chromium, artifacts):
    p = jobs_platform
    a, b = JobUser(p, "page-owner"), JobUser(p, "page-other")
    job = a.submit(kind="command", command="echo private-output", name="private")
    a.wait(job["id"], "COMPLETED")
    page = browser_login(chromium, p, b.name, b.password)
    resp = page.goto(p.service_url + f"jobs/{job['id']}")
    assert resp.status == 403
    assert "private-output" not in page.content() and "Not allowed" in page.locator("h1").inner_text()
    assert "belongs to another user" in page.locator("#forbidden-why").inner_text()
    page.screenshot(path=str(artifacts / "job-page-forbidden.png"), full_page=True)
    denials = admin_api(p, "GET", "audit", params={"actor": b.name, "outcome": "denied"}).json()["entries"]
    assert any(e["action"] == f"page /services/astrago/jobs/{job['id']}" for e in denials), denials
    assert page.goto(p.service_url + "jobs/ffffffffffff").status == 404
    page.close()

    admin = browser_login(chromium, p, "admin", p.admin_password)
    assert admin.goto(p.service_url + f"jobs/{job['id']}").status == 200
    admin.wait_for_function("document.getElementById('log').textContent.includes('private-output')", timeout=30000)
    admin.goto(p.service_url + f"admin/jobs?user={a.name}")
    assert admin.locator(f'tr[data-job="{job["id"]}"]').count() == 1
    assert admin.locator(".ag-subnav a.active").inner_text() == "Jobs"
    admin.screenshot(path=str(artifacts / "admin-jobs.png"), full_page=True)
    admin.close()


def test_one_navigation_bar_on_every_page(jobs_platform, chromium, artifacts):
    p = jobs_platform
    u = JobUser(p, "navuser")
    page = browser_login(chromium, p, u.name, u.password)
    bars = {}
    for name, url in (("hub-home", p.url + "/hub/home"), ("my-astrago", p.service_url + "me"),
                      ("my-jobs", p.service_url + "jobs"), ("upload", p.service_url + "uploads/"),
                      ("hub-token", p.url + "/hub/token")):
        assert page.goto(url).status == 200, url
        assert page.locator(NAV).count() == 1, name
        bars[name] = nav_links(page)
        page.locator(NAV).screenshot(path=str(artifacts / f"nav-{name}.png"))
    page.screenshot(path=str(artifacts / "hub-token-with-nav.png"), full_page=True)
    first = bars["hub-home"]
    assert [t for t, _ in first] == ["AstraGo", "Home", "My AstraGo", "My jobs", "My usage", "Upload", "Teams", "Token",
                                    "Log out"], first
    assert all(links == first for links in bars.values()), bars
    page.goto(p.url + "/hub/home")
    page.screenshot(path=str(artifacts / "hub-home.png"), full_page=True)
    page.close()

    admin = browser_login(chromium, p, "admin", p.admin_password)
    admin_bars = []
    for url in (p.url + "/hub/home", p.service_url + "me", p.service_url + "admin/jobs", p.service_url + "uploads/"):
        admin.goto(url)
        texts = [t for t, _ in nav_links(admin)]
        assert texts.count("Admin") == 1 and "Admin panel" not in texts, (url, texts)
        admin_bars.append(nav_links(admin))
    assert all(b == admin_bars[0] for b in admin_bars), admin_bars
    admin.goto(p.service_url + "admin/quotas")
    assert "{" not in admin.locator("table").first.inner_text()  # limits in words, not JSON
    admin.screenshot(path=str(artifacts / "admin-quotas-in-words.png"), full_page=True)
    admin.close()
