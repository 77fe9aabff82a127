"""Fixtures shared by every test package."""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The data folder of the dataset catalog (exprl.data.catalog) with the real corpora: $EXPRL_DATA_DIR, else
# ../shared/data beside the checkout, as in CI and on the development machines. A user's clone has none, and
# the tests that need it skip; `EXPRL_DATA_DIR=/an/empty/folder make test` runs the suite as such a clone
# does (docs/architecture.md, "Tests", lists each of those tests and the generated-data test covering it).
SHARED_DATA = Path(os.environ.get("EXPRL_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")

# One torch process on 2 cores: keep OpenMP from spinning threads the machine does not have.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The most seconds a test NOT marked `slow` may take (its setup and its call), at the pace of the 2-core
# development machine running one test process: `make test-fast` is the edit loop, and a test that takes
# longer belongs under `slow` (or should be made faster). A slower machine raises it with
# $EXPRL_FAST_TEST_LIMIT_S; 0 turns the check off. Checked by pytest_runtest_makereport below.
FAST_TEST_LIMIT_S = 15.0
FAST_TEST_LIMIT_ENV = "EXPRL_FAST_TEST_LIMIT_S"

# The verl adapter's tests run in verl's own environment (`make test-verl`, .venv-verl: verl pins
# versions this one does not use); where verl is not installed they are not collected at all.
collect_ignore_glob = [] if importlib.util.find_spec("verl") else ["integrations/verl/*"]


@contextlib.contextmanager
def _as_data_dir(folder: Path) -> Iterator[Path]:
    """`folder` made $EXPRL_DATA_DIR, so that catalog names (gsm8k-train, math500) load from it."""
    from exprl.data.catalog import DATA_DIR_ENV

    previous = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = previous


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory) -> Path:
    """A folder of the catalog's five files with rows exprl generates (testing/corpora.py), shaped like
    ../shared/data: every clone has it."""
    from testing.corpora import write_catalog_files

    return write_catalog_files(tmp_path_factory.mktemp("generated-data"))


@pytest.fixture(params=["generated", "shared"])
def catalog_data(request, monkeypatch) -> Path:
    """The data folder of a test whose behaviour holds on any folder of the catalog's files: once the
    generated one (always), once ../shared/data (skipped where there is none). Made $EXPRL_DATA_DIR."""
    from exprl.data.catalog import DATA_DIR_ENV

    folder = request.getfixturevalue("generated_data" if request.param == "generated" else "shared_data")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Iterator[Path]:
    """The data folder with the catalog's files (MATH, MATH-500, GSM8K), also made $EXPRL_DATA_DIR so
    that catalog names (gsm8k-train, math500) load from it. A user's clone has none: skip there."""
    from exprl.data.catalog import CATALOG

    missing = [e.local_file for e in CATALOG if not (SHARED_DATA / e.local_file).is_file()]
    if missing:
        pytest.skip(f"real-data test: {SHARED_DATA} lacks {', '.join(missing)} (set EXPRL_DATA_DIR to a folder of "
                    f"the catalog's files; ../shared/data exists beside the repo in CI)")
    with _as_data_dir(SHARED_DATA):
        yield SHARED_DATA


def fast_test_limit_s() -> float:
    """FAST_TEST_LIMIT_S, or $EXPRL_FAST_TEST_LIMIT_S where set (0: no limit)."""
    raw = os.environ.get(FAST_TEST_LIMIT_ENV, "").strip()
    try:
        return float(raw) if raw else FAST_TEST_LIMIT_S
    except ValueError:
        raise pytest.UsageError(f"{FAST_TEST_LIMIT_ENV} must be a number of seconds, got {raw!r}") from None


_SETUP_SECONDS = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail a passing test that is not marked slow and took longer than the limit (setup + call): the
    fast suite stays fast because a slow test cannot join it unmarked."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup":
        item.stash[_SETUP_SECONDS] = call.duration
        return
    limit = fast_test_limit_s()
    if call.when != "call" or not report.passed or not limit or item.get_closest_marker("slow"):
        return
    took = item.stash.get(_SETUP_SECONDS, 0.0) + call.duration
    if took > limit:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} took {took:.1f} s (setup {took - call.duration:.1f} s), over the "
                           f"{limit:g} s a test not marked slow may take: mark it @pytest.mark.slow or make it "
                           f"faster ({FAST_TEST_LIMIT_ENV} raises the limit on a slower machine)")

