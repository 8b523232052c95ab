"""The web view (`swarm manage --ui-addr`) in a real headless Chromium (Debian's `chromium`, driven by
Selenium through Debian's `chromium-driver`): the page lists the nodes, a container started with the
docker CLI appears within 2 s and leaves after `docker rm -f`, a click shows its inspect summary and
last log lines, the filters narrow the page, and a node whose agent is killed turns Unhealthy.

The module runs its own cluster (`own_cluster`: it kills an agent) plus a manager serving the view."""
from __future__ import annotations

import json
import shutil
import urllib.request
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from swarmd.localcluster.processes import free_port
from tests.integration.conftest import DockerCLI, docker_cli_binary, own_cluster
from tests.integration.test_config_refusals import TOKEN, assert_refused, swarm

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LIVE = 2.0          # the promise: a change is on the page within 2 s, without a reload
LOST = "node3"


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    """The module's own cluster and a second manager on it serving the web view (index 1)."""
    with own_cluster(lab, tmp_path_factory.mktemp("web-view")) as c:
        c.ui_addr = f"127.0.0.1:{free_port()}"
        c.start_manager("--ui-addr", c.ui_addr)
        c.wait_nodes(len(lab.engines), manager=1)
        yield c


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromedriver are not installed; run `make test`, which installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900"):
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    yield b
    b.quit()


@pytest.fixture(scope="module")
def page(cluster, browser):
    browser.get(f"http://{cluster.ui_addr}/")
    return browser


@pytest.fixture(params=["28", "20.10"])
def ui_cli(request, cluster, tmp_path) -> DockerCLI:
    """Each docker CLI, pointed at the manager that serves the view."""
    return DockerCLI(f"tcp://{cluster.manager_addrs[1]}", str(tmp_path / "cfg"), docker_cli_binary(request.param))


# the page redraws whenever the pushed summary changes, so what is drawn is read in one script
# rather than element by element (an element read between two redraws would be stale)
def columns(b) -> dict[str, str]:
    """Node name -> status, as drawn."""
    return b.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.node')].map(c => [c.dataset.name, c.dataset.status]))")


def cards(b) -> dict[str, dict]:
    """Container name -> {node, state, text} of its card, as drawn."""
    return b.execute_script("""
        const out = {};
        for (const c of document.querySelectorAll('.node .card'))
          out[c.dataset.name] = {node: c.closest('.node').dataset.name, state: c.dataset.state, text: c.innerText};
        return out;""")


def test_the_page_lists_every_node_healthy_with_the_strategy(page, lab):
    want = {e.name: "Healthy" for e in lab.engines}
    WebDriverWait(page, 20).until(lambda b: columns(b) == want)
    assert "strategy spread" in page.find_element(By.ID, "policy").text
    assert page.find_element(By.ID, "live").text == "live"


def test_a_container_appears_shows_its_logs_and_leaves(page, ui_cli):
    name, port = f"web-{uuid.uuid4().hex[:6]}", free_port()
    ui_cli.run("run", "-d", "--name", name, "-p", f"{port}:80", "busybox", "sh", "-c", "echo hello-web-view; sleep 300")
    try:
        node = ui_cli.out("inspect", "--format", "{{.Node.Name}}", name).strip()
        # drawn running in its node's column: `docker run -d` has returned, so it has started
        WebDriverWait(page, LIVE, poll_frequency=0.1).until(
            lambda b: (cards(b).get(name) or {}).get("node") == node and cards(b)[name]["state"] == "running")
        card = cards(page)[name]
        assert f"{port}->80/tcp" in card["text"] and "busybox" in card["text"]
        page.execute_script("document.querySelector(`.card[data-name='${arguments[0]}']`).click()", name)
        logs = page.find_element(By.ID, "detail-logs")
        WebDriverWait(page, 10).until(lambda b: "hello-web-view" in logs.text)
        assert page.find_element(By.ID, "detail-title").text == f"{node}/{name}"
        ARTIFACTS.mkdir(exist_ok=True)
        page.save_screenshot(str(ARTIFACTS / "ui-detail.png"))
        page.find_element(By.ID, "detail-close").click()
        # the event tail says which node did what
        WebDriverWait(page, LIVE).until(lambda b: f"{node} container start {name}" in b.find_element(By.ID, "events").text)
    finally:
        ui_cli.run("rm", "-f", name)
    WebDriverWait(page, LIVE, poll_frequency=0.1).until(lambda b: name not in cards(b))


def test_filters_narrow_the_page_and_a_screenshot_is_written(page, cluster, lab, tmp_path):
    cli = DockerCLI(f"tcp://{cluster.manager_addrs[1]}", str(tmp_path / "cfg"), docker_cli_binary("28"))
    names = [f"api-{uuid.uuid4().hex[:4]}", f"cache-{uuid.uuid4().hex[:4]}", f"worker-{uuid.uuid4().hex[:4]}"]
    for n in names:
        cli.run("run", "-d", "--name", n, "busybox", "sleep", "300")
    try:
        WebDriverWait(page, LIVE).until(lambda b: set(names) <= set(cards(b)))
        ARTIFACTS.mkdir(exist_ok=True)
        page.save_screenshot(str(ARTIFACTS / "ui.png"))
        assert (ARTIFACTS / "ui.png").stat().st_size > 0
        box = page.find_element(By.ID, "f-name")
        box.send_keys("cache")
        WebDriverWait(page, LIVE).until(lambda b: set(cards(b)) == {names[1]})
        box.clear()
        box.send_keys("\b")
        first = lab.engines[0].name
        page.find_element(By.ID, "f-node").send_keys(first)
        WebDriverWait(page, LIVE).until(lambda b: list(columns(b)) == [first])
        page.find_element(By.ID, "f-node").clear()
        page.find_element(By.ID, "f-label").send_keys("nosuchlabel=x")
        WebDriverWait(page, LIVE).until(lambda b: columns(b) == {})
        page.find_element(By.ID, "f-label").clear()
        page.find_element(By.ID, "f-label").send_keys(" ")     # an input event: reconnect unfiltered
        WebDriverWait(page, LIVE).until(lambda b: len(columns(b)) == len(lab.engines))
    finally:
        for n in names:
            cli.run("rm", "-f", n)


def test_the_data_endpoints_answer_docker_shaped_errors(cluster):
    for path, status in (("/api/containers/nosuch", 404), ("/static/..%2fsummary.py", 404), ("/nosuch", 404)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{cluster.ui_addr}{path}", timeout=5)
        assert err.value.code == status
        assert "message" in json.loads(err.value.read())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(f"http://{cluster.ui_addr}/api/summary", method="POST"), timeout=5)
    assert err.value.code == 405


def test_a_node_whose_agent_is_killed_turns_unhealthy(page, cluster, lab):
    WebDriverWait(page, 20).until(lambda b: columns(b).get(LOST) == "Healthy")
    cluster.agents[LOST].kill9()
    # the agent's lease (TTL 3 s) has to run out before any manager may call the node lost
    WebDriverWait(page, 30).until(lambda b: columns(b).get(LOST) == "Unhealthy")
    assert all(s == "Healthy" for n, s in columns(page).items() if n != LOST)


def test_ui_addr_beyond_loopback_without_tls_is_refused(sentinel):
    out = swarm("manage", "--ui-addr", "0.0.0.0:8080", "--discovery-addr", sentinel.addr, TOKEN)
    assert_refused(out, "manage")
    assert "--ui-addr" in out.stderr or "web view" in out.stderr
    assert not sentinel.contacted()
    assert_refused(swarm("manage", "--ui-addr", "nohost", "--discovery-addr", sentinel.addr, TOKEN), "manage")


@pytest.fixture
def sentinel():
    from tests.integration.test_config_refusals import Sentinel
    s = Sentinel()
    yield s
    s.close()
