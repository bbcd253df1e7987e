"""An upstream MCP server written with the official Python SDK (`MCPServer`, formerly
FastMCP), run by the gateway over stdio in test_mcp_sdk.py: a second, independent
implementation of the protocol behind `/mcp`."""

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("py-upstream")


@server.tool()
def greet(name: str) -> str:
    """Greets someone by name."""
    return f"Hello, {name}!"


@server.tool()
def divide(a: float, b: float) -> float:
    """Divides a by b; dividing by zero is a tool error."""
    if b == 0:
        raise ToolError("division by zero")
    return a / b


@server.tool()
def delete_everything() -> str:
    """A tool no tenant should reach (the tests' policy denies it)."""
    return "deleted"


if __name__ == "__main__":
    server.run("stdio")
