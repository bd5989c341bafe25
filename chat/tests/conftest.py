import pytest


@pytest.fixture(autouse=True)
async def close_generation_hub():
    """Each test has its own event loop, and the hub of a loop holds Redis connections and
    background tasks: closed with the test, as the lifespan shutdown closes it in production."""
    yield
    from core.hub import aclose_hub

    await aclose_hub()
