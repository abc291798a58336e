# Airflow image with the project's pinned Python dependencies (docker-compose.yaml builds it).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt constraints.txt /opt/domain-sync/
RUN pip install --no-cache-dir \
        -r /opt/domain-sync/requirements.txt \
        -c /opt/domain-sync/constraints.txt

ENV PYTHONPATH=/opt/airflow/include:/opt/airflow
