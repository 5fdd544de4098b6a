"""explain.html opens in a real browser with nothing else: headless Chromium loads every image.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (installed by ``make test``'s set-up)
and the ``selenium`` package (the ``dev`` extra). Missing, the test fails and says so: it never
skips.
"""

import shutil

import pytest

SETUP = ("headless Chromium is needed for this test: run the set-up of `make test`, which installs the "
         "Debian packages (apt-get install -y chromium chromium-driver) and the dev extra (selenium)")


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed; {SETUP}")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(f"{'chromium' if browser is None else 'chromedriver'} is not on PATH; {SETUP}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def test_every_image_loads_in_headless_chromium(report_2d):
    page = report_2d / "explain.html"
    # the same page from a folder of its own: it must not need the PNGs beside it
    alone = report_2d.parent / "alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(page, alone / "explain.html")
    driver = _driver()
    try:
        driver.set_page_load_timeout(60)
        driver.get((alone / "explain.html").as_uri())
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))"
            ".then(() => done(true));")
        images = driver.execute_script(
            "return Array.from(document.images)"
            ".map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
        headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
    finally:
        driver.quit()
    assert len(images) == 6
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    assert "Numbers" in headings and "5. Sensitivity" in headings


def test_a_missing_browser_fails_with_the_setup_instruction(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    expected = r"not on PATH; .*apt-get install -y chromium chromium-driver"
    with pytest.raises(pytest.fail.Exception, match=expected):
        _driver()
