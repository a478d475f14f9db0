"""`fedprice api …`: what the storefront's operators run."""

from __future__ import annotations

import typer

app = typer.Typer(help="Pricing API: serve quotes over HTTP.", no_args_is_help=True)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the pricing API with uvicorn on the newest verified model."""
    import uvicorn

    uvicorn.run("pricing_api.app:create_app", factory=True, host=host, port=port)
