export DATABASE_URL=postgres://postgres@127.0.0.1:5432/orch_lead
export CELERY_BROKER_URL=redis://127.0.0.1:6379/9
export SECRET_KEY=x
