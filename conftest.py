"""Session set-up shared by every test tier.

Airflow reads AIRFLOW_HOME when first imported: point it at a throw-away folder before any test
module imports it, so tests never touch a real Airflow home.
"""

import os
import tempfile

os.environ["AIRFLOW_HOME"] = os.environ.get("DOMAIN_SYNC_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

pytest_plugins = ["tests.fixtures.local_domain", "tests.fixtures.sync_env", "tests.fixtures.alert_sinks",
                  "tests.fixtures.azurite", "tests.fixtures.airflow_services"]
