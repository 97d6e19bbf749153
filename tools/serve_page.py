"""Drives `ssd serve`'s page in headless Chromium and checks what it shows against the API.

Loads `/`, uploads IMAGE through the page's file input, waits for the page to draw, reads the
detections it lists (every box drawn on the canvas is a row of the table beside it), and compares
them with `POST /v1/detect?min_score=<the slider's value>` for the same file: same count, same
labels, boxes and scores equal to 1e-4. Then moves the score slider and checks that the page
filters without a new request (the server's request counter does not move) and that what it
lists equals the API's answer at the new threshold. Saves a screenshot. Prints one JSON line.

Debian's chromium and chromedriver (scripts/install-browser.sh); nothing is downloaded.
"""

import argparse
import json
import mimetypes
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def api_detect(base, image, min_score):
    with open(image, "rb") as f:
        body = f.read()
    kind = mimetypes.guess_type(image)[0] or "application/octet-stream"
    request = urllib.request.Request(
        f"{base}/v1/detect?min_score={min_score}",
        data=body,
        headers={"Content-Type": kind},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.load(r)[0]


def detect_requests(base):
    """The server's count of answered POST /v1/detect requests."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ssd_http_requests_total{") and 'route="/v1/detect"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def shown(driver):
    """The detections the page lists: label, score, box."""
    rows = driver.find_elements(By.CSS_SELECTOR, "section.result tr.det")
    return [
        {
            "label": int(r.get_attribute("data-label")),
            "score": float(r.get_attribute("data-score")),
            "bbox": json.loads(r.get_attribute("data-bbox")),
        }
        for r in rows
    ]


def compare(page, api, what):
    want = [
        {"label": d["label"], "score": d["score"], "bbox": d["bbox"]} for d in api["detections"]
    ]
    if len(page) != len(want):
        sys.exit(f"{what}: the page shows {len(page)} boxes, the API answers {len(want)}")
    for i, (p, w) in enumerate(zip(page, want)):
        if p["label"] != w["label"]:
            sys.exit(f"{what}: box {i} has label {p['label']} on the page, {w['label']} from the API")
        if abs(p["score"] - w["score"]) > 1e-4:
            sys.exit(f"{what}: box {i} score {p['score']} vs {w['score']}")
        if max(abs(a - b) for a, b in zip(p["bbox"], w["bbox"])) > 1e-4:
            sys.exit(f"{what}: box {i} {p['bbox']} vs {w['bbox']}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--image", required=True)
    parser.add_argument("--screenshot", required=True)
    parser.add_argument("--raise-to", type=float, default=0.5, help="slider value to check")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1100,900"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(args.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: "loading" not in d.find_element(By.ID, "model").text)
        model = driver.find_element(By.ID, "model").text
        driver.find_element(By.ID, "file").send_keys(args.image)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                   in ("done", "error"))
        status = driver.find_element(By.ID, "status").text
        if driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") != "done":
            sys.exit(f"the page reports: {status}")
        slider = float(driver.find_element(By.ID, "score").get_attribute("value"))
        first = shown(driver)
        compare(first, api_detect(args.url, args.image, slider), f"at score {slider}")
        canvases = driver.find_elements(By.CSS_SELECTOR, "section.result canvas")
        if len(canvases) != 1 or int(canvases[0].get_attribute("width")) == 0:
            sys.exit("the page drew no canvas")

        # The slider filters what was fetched: no new request, the API's answer at that score.
        before = detect_requests(args.url)
        driver.execute_script(
            "const s = document.getElementById('score'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));", args.raise_to)
        raised = shown(driver)
        after = detect_requests(args.url)
        if after != before:
            sys.exit(f"moving the slider sent {after - before} request(s)")
        compare(raised, api_detect(args.url, args.image, args.raise_to),
                f"at score {args.raise_to}")
        # Back to the first threshold for the screenshot.
        driver.execute_script(
            "const s = document.getElementById('score'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));", slider)
        time.sleep(0.2)
        driver.save_screenshot(args.screenshot)
        print(json.dumps({
            "model": model, "status": status, "slider": slider, "boxes": len(first),
            "raised_to": args.raise_to, "boxes_raised": len(raised),
            "screenshot": args.screenshot,
        }))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
