FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings that import cleanly; the real secret comes from the environment.
RUN DJANGO_SECRET_KEY=build-only DJANGO_DEBUG=0 python manage.py collectstatic --noinput

RUN useradd --create-home app && chown -R app /app
USER app
EXPOSE 8000

# One event loop serves many concurrent streams; add workers for CPU, not for concurrency.
# On SIGTERM uvicorn waits up to 20 s for open requests, then GracefulShutdown (chatbackend/asgi.py)
# gives the streams still open up to 10 s more to save their replies: the supervisor's kill grace
# must exceed 30 s (docker-compose.yml: stop_grace_period 40s; `docker stop --time 40`; Kubernetes:
# terminationGracePeriodSeconds 40, README "Deployment"), or a SIGKILL cuts replies mid-save.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec uvicorn chatbackend.asgi:application --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2} --timeout-graceful-shutdown 20 --proxy-headers"]
