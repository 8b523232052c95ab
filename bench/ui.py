"""The web view at scale: `swarm manage --ui-addr` over 1,000 hollow nodes carrying 30,000 containers,
loaded in a real headless Chromium (Debian's `chromium`, driven by Selenium through `chromedriver`).

The fleet is the `scale` suite's (`HollowCluster`), with every container already running when its
node joins. Measured: navigation -> node columns drawn (a MutationObserver installed before the
page's own script records the moment, in the page's clock); `/api/summary` size and median time;
the page's JS heap after load and after the change; how long a `docker run`
through the manager's API takes to appear as a card; and whether the main thread stays responsive
(`setTimeout(0)` round trips measured in the page, and the long tasks a PerformanceObserver saw).
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
import urllib.request

from bench.report import Row, judged
from bench.scale import HollowCluster
from swarmd.localcluster.processes import free_port, wait_until

CONTAINERS_PER_NODE = 30
PROBES = 20                 # setTimeout(0) round trips sampled while the stream keeps pushing

# installed before any of the page's scripts run: records when the first node column is drawn and
# every long task (> 50 ms on the main thread) from navigation on
WATCH = """
window.__bench = {columnsAt: null, summaryAt: null, longTasks: []};
// when the first pushed summary arrives, before the page parses and draws it: splits the columns'
// time into the manager's part (computing and sending the summary) and the browser's (drawing it)
const listen = EventSource.prototype.addEventListener;
EventSource.prototype.addEventListener = function (type, fn, ...rest) {
  const first = (m) => { if (window.__bench.summaryAt === null) window.__bench.summaryAt = performance.now(); fn(m); };
  return listen.call(this, type, type === 'summary' ? first : fn, ...rest);
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.longTasks.push(e.duration);
}).observe({type: 'longtask', buffered: true});
new MutationObserver(() => {
  if (window.__bench.columnsAt === null && document.querySelector('#board .node'))
    window.__bench.columnsAt = performance.now();
}).observe(document, {childList: true, subtree: true});
"""

# mean and max of PROBES `setTimeout(0)` round trips, measured in the page (the driver's own
# round trip would add the WebDriver protocol's latency to every sample)
PROBE = """
const done = arguments[arguments.length - 1], n = arguments[0], out = [];
function one() {
  const t = performance.now();
  setTimeout(() => { out.push(performance.now() - t); out.length < n ? one() : done(out); }, 0);
}
one();
"""


def browser():
    from selenium import webdriver              # only this suite needs Selenium
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        raise SystemExit("the ui suite needs Debian's chromium and chromium-driver (`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900", "--enable-precise-memory-info"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def heap_mib(b) -> float:
    metrics = {m["name"]: m["value"] for m in b.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    return metrics["JSHeapUsedSize"] / 2**20


def timed_summary(ui: str, n: int) -> tuple[float, int]:
    """Median seconds of `n` GET /api/summary, and the body's size in bytes."""
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://{ui}/api/summary", timeout=30) as r:
            size = len(r.read())
        times.append(time.perf_counter() - t)
    return statistics.median(times), size


def docker_run(api: str, name: str, node: str) -> None:
    """`docker run -d` as the CLI sends it (create, then start), pinned to a node the page draws."""
    def post(path: str, body: dict | None = None) -> bytes:
        req = urllib.request.Request(f"http://{api}{path}", data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()
    created = json.loads(post(f"/containers/create?name={name}",
                              {"Image": "busybox", "Cmd": ["sleep", "3600"], "Env": [f"constraint:node=={node}"]}))
    post(f"/containers/{created['Id']}/start")


def drawn(b) -> dict:
    return b.execute_script(
        "return {columns: document.querySelectorAll('#board .node').length,"
        " cards: document.querySelectorAll('#board .card').length,"
        " first: (document.querySelector('#board .node') || {dataset: {}}).dataset.name || null}")


def measure_page(b, cluster: HollowCluster, ui: str, nodes: int) -> list[Row]:
    from selenium.webdriver.support.ui import WebDriverWait
    rows: list[Row] = []
    b.execute_cdp_cmd("Performance.enable", {})
    b.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    b.get(f"http://{ui}/")
    WebDriverWait(b, 60, poll_frequency=0.05).until(lambda d: d.execute_script("return window.__bench.columnsAt"))
    columns_at = b.execute_script("return window.__bench.columnsAt") / 1e3
    summary_at = b.execute_script("return window.__bench.summaryAt") / 1e3
    seen = drawn(b)
    rows.append(judged(f"ui: navigation -> node columns drawn ({seen['columns']} columns, {seen['cards']} cards"
                       f" of {nodes} nodes)", columns_at, "s", "<= 2"))
    rows.append(judged("ui:   of which navigation -> first pushed summary received", summary_at, "s"))
    rows.append(judged("ui:   of which summary received -> columns drawn (the browser's part)",
                       (columns_at - summary_at) * 1e3, "ms", "<= 500"))
    rows.append(judged("ui: page JS heap after load", heap_mib(b), "MiB", "<= 100"))

    name = f"ui-bench-{free_port()}"
    t = time.perf_counter()
    docker_run(cluster.api, name, seen["first"])
    WebDriverWait(b, 30, poll_frequency=0.02).until(
        lambda d: d.execute_script("return !!document.querySelector(`.card[data-name='${arguments[0]}']`)", name))
    rows.append(judged("ui: docker run through the API -> card on the page", time.perf_counter() - t, "s", "<= 2"))

    probes = b.execute_async_script(PROBE, PROBES)
    rows.append(judged(f"ui: main thread setTimeout(0) round trip, max of {PROBES}", max(probes), "ms", "<= 50"))
    long_tasks = b.execute_script("return window.__bench.longTasks")
    rows.append(judged("ui: long tasks (> 50 ms) since navigation, total", sum(long_tasks), "ms"))
    rows.append(judged("ui: longest task since navigation", max(long_tasks, default=0), "ms", "<= 200"))
    rows.append(judged("ui: page JS heap after the change", heap_mib(b), "MiB", "<= 100"))
    return rows


def run(quick: bool = False, nodes: int | None = None) -> list[Row]:
    nodes = nodes or (100 if quick else 1000)
    ui = f"127.0.0.1:{free_port()}"
    cluster = HollowCluster(nodes, CONTAINERS_PER_NODE, manager_args=("--ui-addr", ui))
    rows: list[Row] = []
    b = None
    try:
        converged = cluster.start_converged()
        rows.append(judged(f"ui: fleet up, {nodes} nodes / {nodes * CONTAINERS_PER_NODE} containers", converged, "s"))
        wait_until(lambda: timed_summary(ui, 1), 20, "the web view to answer")
        seconds, size = timed_summary(ui, 5 if quick else 11)
        rows.append(judged(f"ui: /api/summary median, {nodes} nodes", seconds * 1e3, "ms", "<= 200"))
        rows.append(judged("ui: /api/summary size", size / 1024, "KiB"))
        b = browser()
        rows += measure_page(b, cluster, ui, nodes)
    finally:
        if b is not None:
            b.quit()
        cluster.stop()
    return rows
