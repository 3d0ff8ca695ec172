"""An HTTP proxy on loopback in front of an S3-compatible server that fails
on purpose, for the retry test of `make test`: of the ranged GETs (block
reads) it forwards, every EVERY-th is not forwarded but answered
`503 Slow Down` (as S3 answers when it sheds load), or, every other time,
held STALL_S seconds and then dropped (a request that times out). Every
other request goes on to the server and its answer comes back whole.
Each fault is one line in LOG ("503 /bucket/key" or "stall /bucket/key").

    python flaky_proxy.py LISTEN_PORT UPSTREAM_PORT EVERY STALL_S LOG
"""
import asyncio
import sys

SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: 88\r\n\r\n"
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class Faults:
    """Which ranged GET fails, and how; the log of faults."""

    def __init__(self, every, stall, log):
        self.every, self.stall, self.log = every, stall, log
        self.ranged = 0
        self.faults = 0

    def fault_for(self, method, path, headers):
        if method != b"GET" or b"range" not in headers:
            return None
        self.ranged += 1
        if self.ranged % self.every:
            return None
        self.faults += 1
        kind = "503" if self.faults % 2 else "stall"
        with open(self.log, "a") as f:
            f.write(f"{kind} {path.decode(errors='replace')}\n")
        return kind


async def read_request(reader):
    """One request: its head (lines) and body; None at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return lines, headers, body


async def forward(upstream, lines, body):
    """The server's whole answer to the request (one connection each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", upstream)
    kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
    writer.write(b"\r\n".join([lines[0], *kept, b"Connection: close", b"", b""]) + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def serve(upstream, faults, reader, writer):
    try:
        while request := await read_request(reader):
            lines, headers, body = request
            method, path = (lines[0].split(b" ") + [b"", b""])[:2]
            fault = faults.fault_for(method, path, headers)
            if fault == "stall":
                await asyncio.sleep(faults.stall)
                return
            answer = SLOW_DOWN if fault == "503" else await forward(upstream, lines, body)
            writer.write(answer)
            await writer.drain()
            if fault is None:
                return  # the server closed its answer's connection; so does the proxy
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(listen, upstream, every, stall, log):
    faults = Faults(every, stall, log)
    server = await asyncio.start_server(lambda r, w: serve(upstream, faults, r, w), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port, upstream, every, stall, log = sys.argv[1:]
    asyncio.run(main(int(port), int(upstream), int(every), float(stall), log))
