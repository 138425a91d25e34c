#!/usr/bin/env python3
"""Browser test of the live dashboard (issue #6): headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by Selenium) loads the page of a running `cardwatch run`, waits
until alerts have arrived over the WebSocket, saves a screenshot, opens an alert and marks it
as fraud with the page's own button, then checks through the API that the feedback was stored.
While the pointer is on the table, new alerts must wait (rows pushed down under it would make a
click open another alert).

With a read and a write token (a server run with --read-token and --token), the page must ask
for a token: the test answers the first prompt with the read token (the alerts and the live feed
then load), and the one that "Mark fraud" brings up with the write token.

usage: browser-test.py URL SCREENSHOT.png [READ_TOKEN WRITE_TOKEN]
"""
import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


prompts = []


def answer_prompt(driver, tokens):
    """Answers the page's token prompt, if one is open: the write token when it asks for writes."""
    if not tokens:
        return False
    try:
        prompt = driver.switch_to.alert
    except NoAlertPresentException:
        return False
    text = prompt.text
    prompt.send_keys(tokens[1] if "writes" in text else tokens[0])
    prompt.accept()
    prompts.append(text)
    return True


def main():
    url, shot = sys.argv[1], sys.argv[2]
    tokens = sys.argv[3:5]
    options = webdriver.ChromeOptions()
    options.set_capability("unhandledPromptBehavior", "ignore")
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
    try:
        driver.get(url)
        live = WebDriverWait(driver, 60, poll_frequency=0.25).until(
            lambda d: not answer_prompt(d, tokens) and d.find_elements(By.CSS_SELECTOR, "#alerts tr[data-live='1']"))
        if tokens:
            assert prompts and "reads" in prompts[0], f"the page did not ask for the read token: {prompts}"
            assert driver.execute_script("return sessionStorage.getItem('cardwatch-token')") == tokens[0]
            print(f"[browser] the page asked for a token ({prompts[0]!r}) and keeps it for the session")
        feed = driver.find_element(By.ID, "feed").text
        time.sleep(1.5)  # let the charts and the header fill in for the screenshot
        driver.save_screenshot(shot)
        rows = driver.find_elements(By.CSS_SELECTOR, "#alerts tr")
        print(f"[browser] {len(rows)} alert rows, {len(live)}+ of them live over the WebSocket; header: {feed!r}; "
              f"model: {driver.find_element(By.ID, 'model').text!r}")
        assert feed == "feed: live", feed
        # The header tells the API's health status (degraded while system alerts are active, with their
        # text), and the alert table shows the event time and the decision time side by side.
        base = url.rstrip("/")
        auth = {"Authorization": f"Bearer {tokens[0]}"} if tokens else {}
        for _ in range(5):  # the status may change between the page's request and ours: ask again
            driver.execute_async_script("refresh().then(arguments[0])")
            header = driver.find_element(By.ID, "health").text
            status = json.load(urllib.request.urlopen(urllib.request.Request(f"{base}/pipeline/health", headers=auth)))["status"]
            if header.lower().startswith(status):
                break
        assert header.lower().startswith(status), (status, header)
        heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "thead th")]
        assert heads[:2] == ["event time", "decided"], heads
        print(f"[browser] health header {header!r}; alert table columns {heads}")
        # An alert's detail: its reasons, then the page's "Mark fraud" button.
        target = live[0]
        tx = target.get_attribute("data-id")
        # New alerts go in at the top and push the rows down: a click aimed at a row can land on its
        # neighbour when one arrives in between. The detail names its alert; click until it is ours.
        def ours(d):
            text = d.find_element(By.ID, "detail").text
            return tx in text and "Mark fraud" in text
        for _ in range(5):
            target.click()
            try:
                WebDriverWait(driver, 5, poll_frequency=0.1).until(ours)
                break
            except TimeoutException:
                pass
        detail = driver.find_element(By.ID, "detail").text
        assert ours(driver), f"the detail is not of {tx}: {detail!r}"
        # The pointer is on the table now: alerts that arrive wait above it instead of pushing rows down.
        count = len(driver.find_elements(By.CSS_SELECTOR, "#alerts tr"))
        WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: d.find_element(By.ID, "held").text)
        held = driver.find_element(By.ID, "held").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#alerts tr")) == count, "rows moved under the pointer"
        assert "=" in detail, f"no feature reasons in the detail: {detail!r}"
        button = next(b for b in driver.find_elements(By.CSS_SELECTOR, "#detail button") if b.text == "Mark fraud")
        # The held rows go in when the pointer leaves the table for the button: the button must
        # stay under the pointer (the page once scrolled to keep a row in view, and the click
        # landed on whatever came under it).
        top = "return document.getElementById('detail').getBoundingClientRect().top"
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        before = driver.execute_script(top)
        button.click()
        if tokens:
            # The read token does not write: the page asks for the write token.
            WebDriverWait(driver, 10, poll_frequency=0.1).until(lambda d: answer_prompt(d, tokens))
            assert "writes" in prompts[-1], f"not asked for the write token: {prompts}"
        after = driver.execute_script(top)
        assert before == after, f"the alert's detail moved from {before} to {after} px when {held!r} went in"
        # The pointer has left the table for the button: the held alerts are in the table.
        WebDriverWait(driver, 10).until(lambda d: not d.find_element(By.ID, "held").text)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#alerts tr")) > min(count, 99), "the held alerts were not added"
        print(f"[browser] alerts held while pointing at the table ({held!r}), added once the pointer left")
        request = urllib.request.Request(f"{base}/alerts/{tx}", headers=auth)
        for _ in range(100):
            alert = json.load(urllib.request.urlopen(request))
            if alert.get("feedback") == "fraud":
                break
            time.sleep(0.1)
        assert alert.get("feedback") == "fraud", alert
        print(f"[browser] feedback from the page stored for {tx}; screenshot {shot}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
