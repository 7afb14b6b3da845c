import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import {
  afterFirstAnswer,
  openConnection,
  rawExchange,
  request,
  startHttpServer,
  waitFor,
} from "../support/http.js"
import { startAgent, startNode, type TestAgent, type TestNode } from "../support/node.js"
import { readMetrics, valueOf } from "../support/prometheus.js"

interface Seen {
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  /** The request body as the service read it, once it has ended. */
  body?: string
}

let node: TestNode
let agent: TestAgent
let service: Awaited<ReturnType<typeof startHttpServer>>
const seen: Array<Seen> = []
/** Answers to requests for /held-*, which the service holds until the test releases them. */
const held = new Map<string, () => void>()
/** Requests whose connection to the service closed before their body was complete. */
const aborted: Array<string> = []

beforeAll(async () => {
  service = await startHttpServer((req, res) => {
    const entry: Seen = { url: req.url ?? "", headers: req.headers }
    seen.push(entry)
    req.on("aborted", () => aborted.push(req.url ?? ""))
    let body = ""
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString("latin1")
    })
    req.on("end", () => {
      entry.body = body
      if (req.url?.startsWith("/held-")) held.set(req.url, () => res.end(`${req.url} ok`))
      else if (req.url === "/upgrade-refused") res.writeHead(404).end("no upgrade here")
      else res.end(`${req.url} ok`)
    })
  })
  // Node 24 refuses more than 2,000 headers (431) where Node 20 dropped the rest: this service takes them all.
  service.server.maxHeadersCount = 0
  node = await startNode({
    "proxy.read-header-timeout": "500ms",
    "proxy.idle-timeout": "700ms",
    "proxy.gateway-timeout": "1s",
    "upstream.read-header-timeout": "500ms",
    "admin.read-header-timeout": "500ms",
  })
  agent = startAgent(node.upstreamUrl, { e: service.port })
  await waitFor("agent registered", async () => (await node.upstreamCount("e")) === 1)
})

afterAll(async () => {
  await agent.stop()
  await node.close()
  await service.close()
})

const statusOf = (response: string): number => Number(response.slice(9, 12))
const jsonErrorOf = (response: string): string =>
  (JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)) as { error: string }).error

const urlsSeen = () => seen.map((request) => request.url)

/**
 * Sends a request Pico refuses (`method path`, then `rest` of its head and body) pipelined behind one the service
 * holds and ahead of one more, so the connection stays open while Node parses what is behind it: had that one
 * been forwarded, the service would have it before a request sent afterwards, on a connection of its own. Checks
 * that the refused one gets `status` and `error` and closes the connection, and that neither reached the service.
 */
const refusedBehindHeld = async (
  name: string,
  refused: string,
  rest: string,
  status: number,
  error: string,
) => {
  const ahead = `/held-before-${name}`
  const behind = `/behind-${name}`
  const connection = openConnection(
    node.proxyPort,
    `GET ${ahead} HTTP/1.1\r\nHost: e.example.com\r\n\r\n${refused} HTTP/1.1\r\nHost: e.example.com\r\n${rest}` +
      `GET ${behind} HTTP/1.1\r\nHost: e.example.com\r\n\r\n`,
  )
  await waitFor("the service to hold the request ahead", () => held.has(ahead))
  const after = await request(`${node.proxyUrl}/after-${name}`, { headers: { host: "e.example.com" } })
  expect(after.status).toBe(200)
  held.get(ahead)?.()
  const response = await connection.closed
  expect(statusOf(response)).toBe(200)
  expect(urlsSeen()).not.toContain(behind)
  const refusal = response.slice(response.indexOf(`${ahead} ok`) + `${ahead} ok`.length)
  expect([statusOf(refusal), jsonErrorOf(refusal)]).toEqual([status, error])
  expect(refusal).toContain("Connection: close")
  expect(urlsSeen()).not.toContain(refused.split(" ")[1])
}

describe("requests Node's parser refuses get a status and a JSON error, not a silent close", () => {
  const head = "Host: e.example.com\r\n"
  it.each([
    [
      "Content-Length and Transfer-Encoding together",
      `POST /cl-te HTTP/1.1\r\n${head}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      400,
    ],
    [
      "two different Content-Lengths",
      `POST /two-cl HTTP/1.1\r\n${head}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello`,
      400,
    ],
    ["a NUL byte in a header", `GET /nul HTTP/1.1\r\n${head}X-A: a\u0000b\r\n\r\n`, 400],
    ["100 KB of headers", `GET /big HTTP/1.1\r\n${head}X-Big: ${"a".repeat(100_000)}\r\n\r\n`, 431],
  ])("%s", async (_case, bytes, status) => {
    const response = await rawExchange(node.proxyPort, bytes)
    expect(statusOf(response)).toBe(status)
    expect(jsonErrorOf(response)).toMatch(status === 431 ? /too large/ : /malformed request/)
    expect(urlsSeen()).not.toContain(bytes.slice(bytes.indexOf(" ") + 1, bytes.indexOf(" HTTP")))
  })
})

describe("transfer codings", () => {
  // Each on a kept-alive connection with a request behind it: after the refusal nothing more is read from it.
  const behind = "GET /behind-the-coding HTTP/1.1\r\nHost: e.example.com\r\n\r\n"
  it.each([
    [
      "a coding under chunked, which the service would have read as plain bytes",
      "gzip, chunked",
      501,
      "unsupported transfer coding",
    ],
    [
      "codings that do not end with chunked, which leave the body's length unknown",
      "gzip",
      400,
      "invalid transfer encoding",
    ],
  ])(
    "answers %s (Transfer-Encoding: %s) with %i, and serves nothing more from the connection",
    async (_case, codings, status, error) => {
      const response = await rawExchange(
        node.proxyPort,
        `POST /coded HTTP/1.1\r\nHost: e.example.com\r\nTransfer-Encoding: ${codings}\r\n\r\n3\r\nabc\r\n0\r\n\r\n${behind}`,
        5_000,
      )
      expect([statusOf(response), jsonErrorOf(response)]).toEqual([status, error])
      expect(response).toContain("Connection: close")
      // Anything forwarded from that connection would be at the service before a request sent after it.
      const after = await request(`${node.proxyUrl}/after-the-coding`, { headers: { host: "e.example.com" } })
      expect(after.status).toBe(200)
      expect(urlsSeen()).not.toContain("/coded")
      expect(urlsSeen()).not.toContain("/behind-the-coding")
    },
  )

  it("never forwards a request Node parsed from behind a chunked body under another coding", () =>
    // (Node's parser itself stops at codings that do not end with chunked.)
    refusedBehindHeld(
      "coding",
      "POST /coded-behind-held",
      "Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      501,
      "unsupported transfer coding",
    ))

  it("passes chunked, in any case, with its body", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "POST /chunked HTTP/1.1\r\nHost: e.example.com\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n" +
        "3\r\nabc\r\n0\r\n\r\n",
    )
    expect(statusOf(response)).toBe(200)
    expect(seen.find((request) => request.url === "/chunked")?.body).toBe("abc")
  })
})

describe("request targets and Host", () => {
  it("answers a duplicate Host with 400 instead of routing on one of them", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "GET /dup HTTP/1.1\r\nHost: e.example.com\r\nHost: other.example.com\r\nConnection: close\r\n\r\n",
    )
    expect([statusOf(response), jsonErrorOf(response)]).toEqual([400, "duplicate host header"])
    expect(urlsSeen()).not.toContain("/dup")
  })

  it("keeps Content-Length and Host that Connection lists, so a body is never read as a request of its own", async () => {
    const smuggled = "GET /smuggled-by-connection HTTP/1.1\r\nHost: e.example.com\r\n\r\n"
    const response = await rawExchange(
      node.proxyPort,
      "POST /listed-length HTTP/1.1\r\nHost: e.example.com\r\nConnection: close, Content-Length, Host\r\n" +
        `Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    )
    expect(statusOf(response)).toBe(200)
    const forwarded = seen.find((request) => request.url === "/listed-length")
    expect(forwarded?.headers.host).toBe("e.example.com")
    expect(forwarded?.headers["content-length"]).toBe(String(smuggled.length))
    expect(forwarded?.body).toBe(smuggled)
  })

  it("reads every header of a head within the size limit: a Content-Length after 2,100 others still frames the body", async () => {
    const many = "A: b\r\n".repeat(2_100)
    const response = await rawExchange(
      node.proxyPort,
      `POST /many-headers HTTP/1.1\r\nHost: e.example.com\r\n${many}X-Listed: secret\r\nConnection: close, X-Listed\r\n` +
        "Content-Length: 5\r\n\r\nhello",
    )
    expect(statusOf(response)).toBe(200)
    const forwarded = seen.find((request) => request.url === "/many-headers")
    expect(forwarded?.body).toBe("hello")
    expect(forwarded?.headers["x-listed"]).toBeUndefined()
  })

  it("gives an HTTP/1.0 request without Host an empty one, which HTTP/1.1 requires", async () => {
    const response = await rawExchange(node.proxyPort, "GET /no-host HTTP/1.0\r\nx-pico-endpoint: e\r\n\r\n")
    expect(statusOf(response)).toBe(200)
    expect(seen.find((request) => request.url === "/no-host")?.headers.host).toBe("")
  })

  it("rewrites an absolute-form target to origin-form, its authority taking the place of Host", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "GET http://e.example.com/absolute?q=1 HTTP/1.1\r\nHost: elsewhere.example.com\r\nConnection: close\r\n\r\n",
    )
    expect(statusOf(response)).toBe(200)
    const forwarded = seen.find((request) => request.url === "/absolute?q=1")
    expect(forwarded?.headers.host).toBe("e.example.com")
  })

  it("routes by Host whatever its case: DNS names are not case-sensitive", async () => {
    const response = await request(`${node.proxyUrl}/upper`, { headers: { host: "E.Example.COM" } })
    expect([response.status, response.body]).toEqual([200, "/upper ok"])
  })

  it("cuts a refused client that never closes its end, once it has had time to read the answer", async () => {
    const socket = net.connect({ port: node.proxyPort, host: "127.0.0.1", allowHalfOpen: true })
    let answer = ""
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1")
    })
    socket.write("CONNECT e.example.com:443 HTTP/1.1\r\nHost: e.example.com:443\r\n\r\n")
    // Half-open on both sides: the server has said all it will, the client keeps its end open.
    await new Promise((resolve) => socket.once("end", resolve))
    expect(statusOf(answer)).toBe(405)
    expect(socket.destroyed).toBe(false)
    // Once the server has let go of its end, the next byte the client sends is answered with a reset.
    socket.on("error", () => {})
    await waitFor(
      "the server to cut the connection",
      () => {
        if (!socket.destroyed) socket.write("x")
        return socket.destroyed
      },
      12_000,
    )
  }, 15_000)

  it("refuses CONNECT: a reverse proxy opens no tunnels on request", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "CONNECT e.example.com:443 HTTP/1.1\r\nHost: e.example.com:443\r\n\r\n",
    )
    expect([statusOf(response), jsonErrorOf(response)]).toEqual([405, "CONNECT is not supported"])
  })
})

describe("forwarding headers from outside", () => {
  it("treats a client's x-pico-forward like any client's request: X-Forwarded-* appended to or replaced", async () => {
    const response = await request(`${node.proxyUrl}/claims-peer`, {
      headers: {
        "x-pico-endpoint": "e",
        "x-pico-forward": "true",
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "victim.example.com",
      },
    })
    expect(response.status).toBe(200)
    const forwarded = seen.find((request) => request.url === "/claims-peer")
    expect(forwarded?.headers["x-forwarded-for"]).toBe("6.6.6.6, 127.0.0.1")
    expect(forwarded?.headers["x-forwarded-proto"]).toBe("http")
    expect(forwarded?.headers["x-forwarded-host"]).toBe(`127.0.0.1:${node.proxyPort}`)
    expect(forwarded?.headers["x-pico-forward"]).toBeUndefined()
  })
})

describe("upgrades", () => {
  it("relays an upstream's refusal and closes, so a request smuggled behind the upgrade never arrives", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "GET /upgrade-refused HTTP/1.1\r\nHost: e.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
        "GET /smuggled HTTP/1.1\r\nHost: e.example.com\r\nX-Pico-Authorization: stolen\r\n\r\n",
    )
    expect(statusOf(response)).toBe(404)
    expect(response).toContain("no upgrade here")
    expect(response.match(/HTTP\/1\.1/g)).toHaveLength(1)
    expect(urlsSeen()).toContain("/upgrade-refused")
    expect(urlsSeen()).not.toContain("/smuggled")
  })

  it("answers an upgrade to a protocol Pico does not pass through with 400", async () => {
    const response = await rawExchange(
      node.proxyPort,
      "GET /h2c HTTP/1.1\r\nHost: e.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    expect([statusOf(response), jsonErrorOf(response)]).toEqual([400, "unsupported upgrade"])
    expect(urlsSeen()).not.toContain("/h2c")
  })
})

/** Opens a connection that sends `bytes` and then nothing; resolves with what came back and after how long. */
const closedAfter = (bytes: string, port = node.proxyPort) =>
  new Promise<{ readonly response: string; readonly ms: number }>((resolve) => {
    const started = Date.now()
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes))
    let response = ""
    socket.on("data", (chunk: Buffer) => {
      response += chunk.toString()
    })
    socket.on("error", () => {})
    socket.on("close", () => resolve({ response, ms: Date.now() - started }))
  })

describe("expectations", () => {
  it("answers an Expect other than 100-continue with 417 and a JSON error on every HTTP port", async () => {
    for (const port of [node.proxyPort, node.upstreamPort, node.adminPort]) {
      const response = await rawExchange(
        port,
        "POST /expecting HTTP/1.1\r\nHost: e.example.com\r\nExpect: something-else\r\nContent-Length: 2\r\n" +
          "Connection: close\r\n\r\nhi",
      )
      expect([statusOf(response), jsonErrorOf(response)]).toEqual([417, "unsupported expectation"])
    }
    expect(urlsSeen()).not.toContain("/expecting")
  })

  it("closes the connection after the 417 and serves nothing Node parsed behind it", () =>
    refusedBehindHeld(
      "expectation",
      "POST /coded-expecting",
      "Expect: something-else\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      417,
      "unsupported expectation",
    ))
})

describe("a second request on a kept-alive connection", () => {
  // Node clears the connection's response once the first has ended; the refusal must not read it.
  it.each([
    [
      "malformed",
      "GET /second HTTP/1.1\r\nHost: e.example.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      false,
      400,
    ],
    ["cut off by the client's end", "GET /second HTTP/1.1\r\nHost: e", true, 400],
    ["never finished", "GET /second HTTP/1.1\r\nHost: e", false, 408],
  ])("that is %s gets its JSON error on every HTTP port", async (_case, second, end, status) => {
    for (const port of [node.proxyPort, node.upstreamPort, node.adminPort]) {
      const after = await afterFirstAnswer(port, second, end)
      expect(statusOf(after)).toBe(status)
      expect(JSON.parse(after.slice(after.indexOf("\r\n\r\n") + 4)).error).toBeTypeOf("string")
    }
    expect(urlsSeen()).not.toContain("/second")
    expect((await request(`${node.adminUrl}/health`)).status).toBe(200)
  })
})

describe("a request pipelined behind one still being answered", () => {
  it("is counted as the client's 499 when the connection dies before its turn, however many wait", async () => {
    const gone = async () =>
      valueOf(readMetrics((await request(`${node.adminUrl}/metrics`)).body), "pico_proxy_requests_total", {
        status: "499",
      }) ?? 0
    const goneBefore = await gone()
    const warnings: Array<string> = []
    const onWarning = (warning: Error) => warnings.push(warning.name)
    process.on("warning", onWarning)
    onTestFinished(() => void process.off("warning", onWarning))
    // Twelve behind it: more than Node's ten listeners per event, had each added its own to the connection.
    const behind = Array.from(
      { length: 12 },
      (_, i) => `GET /pipelined-behind-${i} HTTP/1.1\r\nHost: e.example.com\r\n\r\n`,
    )
    const connection = openConnection(
      node.proxyPort,
      `GET /held-ahead-of-pipelined HTTP/1.1\r\nHost: e.example.com\r\n\r\n${behind.join("")}`,
    )
    await waitFor("the service to hold the request ahead", () => held.has("/held-ahead-of-pipelined"))
    await waitFor("the service to answer the ones behind", () =>
      behind.every((_, i) => urlsSeen().includes(`/pipelined-behind-${i}`)),
    )
    connection.destroy()
    await connection.closed
    // All: the one whose answer had not started, and the ones whose turn never came.
    await waitFor("every request counted", async () => (await gone()) === goneBefore + 13)
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings).not.toContain("MaxListenersExceededWarning")
  })
})

describe("an upgrade pipelined behind a request", () => {
  it("cuts the connection instead of throwing, on the proxy and admin ports, and the node serves on", async () => {
    const pipelined =
      "GET /before-upgrade HTTP/1.1\r\nHost: e.example.com\r\n\r\n" +
      "GET /pipelined-upgrade HTTP/1.1\r\nHost: e.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    for (const port of [node.proxyPort, node.adminPort]) await rawExchange(port, pipelined)
    expect(urlsSeen()).not.toContain("/pipelined-upgrade")
    expect((await request(`${node.adminUrl}/health`)).status).toBe(200)
    expect(
      (await request(`${node.proxyUrl}/after-upgrade`, { headers: { host: "e.example.com" } })).status,
    ).toBe(200)
  })
})

describe("client timeouts", () => {
  it("answers 408 and closes a connection that sends nothing within --proxy.read-header-timeout", async () => {
    const { response, ms } = await closedAfter("")
    expect(statusOf(response)).toBe(408)
    expect(jsonErrorOf(response)).toBe("request header timeout")
    expect(ms).toBeGreaterThanOrEqual(450)
  })

  it("does the same on the upstream and admin ports, with their own settings", async () => {
    for (const port of [node.upstreamPort, node.adminPort]) {
      const { response, ms } = await closedAfter("", port)
      expect(statusOf(response)).toBe(408)
      expect(ms).toBeGreaterThanOrEqual(450)
    }
  })

  it("closes a request head that trickles in slower than --proxy.read-header-timeout", async () => {
    const started = Date.now()
    const socket = net.connect(node.proxyPort, "127.0.0.1")
    const trickle = setInterval(() => socket.write("X-Slow: 1\r\n"), 100)
    socket.write("GET /trickle HTTP/1.1\r\nHost: e.example.com\r\n")
    const closed = await new Promise<number>((resolve) => {
      socket.on("error", () => {})
      socket.on("close", () => resolve(Date.now() - started))
    })
    clearInterval(trickle)
    expect(closed).toBeGreaterThanOrEqual(450)
    expect(closed).toBeLessThan(5_000)
    expect(urlsSeen()).not.toContain("/trickle")
  })

  it("closes a kept-alive connection idle for --proxy.idle-timeout", async () => {
    const { response, ms } = await closedAfter("GET /keep-alive HTTP/1.1\r\nHost: e.example.com\r\n\r\n")
    expect(statusOf(response)).toBe(200)
    expect(ms).toBeGreaterThanOrEqual(650)
  })

  it("answers 408 when a request body pauses longer than --proxy.idle-timeout", async () => {
    const { response } = await closedAfter(
      "POST /stalled-body HTTP/1.1\r\nHost: e.example.com\r\nContent-Length: 10\r\n\r\nhello",
    )
    expect([statusOf(response), jsonErrorOf(response)]).toEqual([408, "request body timeout"])
  })

  it("counts the gateway timeout from the end of the upload, not its start", async () => {
    // Ten pieces 250 ms apart take 2.5 s; the service answers as soon as the body ends. Gateway timeout: 1 s.
    const response = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        `${node.proxyUrl}/slow-upload`,
        { method: "POST", headers: { "x-pico-endpoint": "e" }, agent: false },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.on("error", reject)
      let pieces = 0
      const next = () => {
        if (pieces++ === 10) return req.end()
        req.write("x".repeat(1024))
        setTimeout(next, 250)
      }
      next()
    })
    expect(response).toBe(200)
  })

  it("releases the upstream stream when a client aborts its upload", async () => {
    const socket = net.connect(node.proxyPort, "127.0.0.1")
    socket.on("error", () => {})
    socket.write("POST /aborted-upload HTTP/1.1\r\nHost: e.example.com\r\nContent-Length: 1000000\r\n\r\n")
    socket.write("x".repeat(100_000))
    await waitFor("request reached the service", () => urlsSeen().includes("/aborted-upload"))
    socket.destroy()
    await waitFor("the service's side closed too", () => aborted.includes("/aborted-upload"))
  })
})
