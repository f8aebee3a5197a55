"""Drives tierlog's search page in headless Chromium (Selenium + Debian's chromedriver),
as a user would, and reports what the page shows as JSON; screenshots go to SHOTS.

usage: ui_browser.py BASE_URL TOKEN SHOTS STEPS_JSON

STEPS_JSON is a list of steps, each {"do": ..., ...}; the output is one JSON object per
step, in order, on stdout. Steps:
  open {hash}                 load BASE_URL/#hash, wait until the page has answered
  login {token?}              (page shows the token prompt) type the token, submit
  view                        what is on screen: login/app visibility, status, streams,
                              hits (timestamp, tier, main), histogram buckets, error line
  expand {index}              click hit `index`; the fields of its details
  tab {name}                  click a tab (hits, errors, lifecycle); its table
  key {keys}                  send keys to the page body
  live {on}                   toggle live; with wait_rows, wait until that many hits show
  drag {from, to}             drag across the histogram between these fractions of its
                              width; the range it set and the status after
  shot {name}                 a screenshot SHOTS/name.png
"""

import json
import sys
import time
from datetime import datetime

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, TOKEN, SHOTS = sys.argv[1], sys.argv[2], sys.argv[3]
STEPS = json.loads(sys.argv[4])
DEADLINE = 60


def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def visible(d, element_id):
    return d.execute_script(f"const e = document.getElementById('{element_id}'); return !!e && !e.hidden && e.offsetParent !== null;")


def settled(d):
    """The page answered: a status line that is not an in-progress one, an error, or the login."""
    status = d.find_element(By.ID, "status").text
    busy = status.endswith("…") and not status.startswith("live")
    return visible(d, "login") or visible(d, "error") or (status and not busy)


def wait(d, condition, what):
    try:
        return WebDriverWait(d, DEADLINE, poll_frequency=0.1).until(lambda _: condition(d))
    except Exception as e:
        raise SystemExit(f"timed out waiting for {what}: {e}; status: {d.find_element(By.ID, 'status').text!r}")


def table(d, element_id):
    rows = d.find_elements(By.CSS_SELECTOR, f"#{element_id} tbody tr")
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in rows]


def view(d):
    buckets = d.execute_script(
        "return [...document.querySelectorAll('#histogram-data tr')].map(tr => [...tr.children].map(td => td.textContent));"
    )
    caption = d.execute_script("const c = document.querySelector('#histogram-data caption'); return c ? c.textContent : '';")
    hits = [
        [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        for tr in d.find_elements(By.CSS_SELECTOR, "#hits tbody tr.hit")
    ]
    return {
        "login": visible(d, "login"),
        "app": visible(d, "app"),
        "status": d.find_element(By.ID, "status").text,
        "error": d.find_element(By.ID, "error").text if visible(d, "error") else None,
        "streams": [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#stream option")],
        "columns": [th.text for th in d.find_elements(By.CSS_SELECTOR, "#hits thead th")],
        "hits": hits,
        "table": table(d, "hits"),
        # Elements a hostile log line would have made, had it been parsed as HTML.
        "injected": len(d.find_elements(By.CSS_SELECTOR, "#hits img, #hits script, #hits iframe")),
        "histogram": {
            "caption": caption,
            "buckets": [[int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()), int(n)] for s, n in buckets],
        },
        "text": d.find_element(By.TAG_NAME, "body").text,
    }


def main():
    d = driver()
    out = []
    try:
        for step in STEPS:
            kind = step["do"]
            if kind == "open":
                d.get(f"{BASE}/#{step.get('hash', '')}")
                d.refresh()  # a new fragment alone does not reload the page
                wait(d, settled, "the page to answer")
                out.append({"url": d.current_url})
            elif kind == "login":
                wait(d, lambda d: visible(d, "login"), "the token prompt")
                field = d.find_element(By.ID, "token")
                field.clear()
                field.send_keys(step.get("token", TOKEN))
                field.send_keys(Keys.ENTER)
                wait(d, lambda d: visible(d, "app") or d.find_element(By.ID, "login-error").text, "signing in")
                wait(d, settled, "the page to answer")
                out.append({"login_error": d.find_element(By.ID, "login-error").text})
            elif kind == "view":
                out.append(view(d))
            elif kind == "expand":
                rows = d.find_elements(By.CSS_SELECTOR, "#hits tbody tr.hit")
                rows[step["index"]].click()
                detail = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#hits tbody tr.details"), "the row's details")[0]
                terms = detail.find_elements(By.TAG_NAME, "dt")
                values = detail.find_elements(By.TAG_NAME, "dd")
                out.append({"fields": {t.text: v.text for t, v in zip(terms, values)}})
            elif kind == "tab":
                before = d.find_element(By.ID, "status").text
                d.find_element(By.CSS_SELECTOR, f"[role=tab][data-tab={step['name']}]").click()
                wait(d, lambda d: settled(d) and d.find_element(By.ID, "status").text != before, f"the {step['name']} tab")
                extra = {"counts": table(d, "error-counts")} if step["name"] == "errors" else {}
                out.append(dict({"status": d.find_element(By.ID, "status").text, "rows": table(d, step["name"])}, **extra))
            elif kind == "key":
                d.find_element(By.TAG_NAME, "body").send_keys(step["keys"])
                time.sleep(0.3)
                out.append({"focused": d.execute_script("return document.activeElement.id || document.activeElement.tagName;")})
            elif kind == "live":
                box = d.find_element(By.ID, "live")
                if box.is_selected() != step["on"]:
                    box.click()
                if step["on"]:
                    wait(d, lambda d: d.find_element(By.ID, "status").text.startswith("live"), "the live tail")
                out.append({"status": d.find_element(By.ID, "status").text})
            elif kind == "wait_hits":
                # Live rows arrive after their produce: wait for the count the test gives.
                wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#hits tbody tr.hit")) >= step["count"], f"{step['count']} hits")
                out.append(view(d))
            elif kind == "drag":
                over = d.find_element(By.CSS_SELECTOR, "#histogram .u-over")
                width, height = over.size["width"], over.size["height"]
                before = d.find_element(By.ID, "status").text
                start = int(width * step["from"]) - width // 2
                ActionChains(d).move_to_element_with_offset(over, start, 0).click_and_hold().move_by_offset(
                    int(width * (step["to"] - step["from"])), 0
                ).release().perform()
                wait(d, lambda d: settled(d) and d.find_element(By.ID, "status").text != before, "the zoomed view")
                out.append(
                    {
                        "range": d.find_element(By.ID, "range").get_attribute("value"),
                        "from": d.find_element(By.ID, "from").get_attribute("value"),
                        "to": d.find_element(By.ID, "to").get_attribute("value"),
                        "url": d.current_url,
                        "status": d.find_element(By.ID, "status").text,
                        "error": d.find_element(By.ID, "error").text if visible(d, "error") else None,
                    }
                )
            elif kind == "shot":
                d.save_screenshot(f"{SHOTS}/{step['name']}.png")
                out.append({"shot": f"{SHOTS}/{step['name']}.png"})
            else:
                raise SystemExit(f"unknown step {kind}")
            print(json.dumps(out[-1]), flush=True)
    finally:
        d.quit()


if __name__ == "__main__":
    main()
