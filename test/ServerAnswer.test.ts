import { describe, expect, it } from "vitest"
import { judgeConnectFailure, proxyErrorHeader } from "../src/Agent/ServerAnswer.js"
import { adminHeader, upstreamHeader } from "../src/internal/Router.js"
import { picoErrorHeader } from "../src/Proxy/Errors.js"
import { TunnelConnectError } from "../src/Tunnel.js"

const url = "http://pico.example.com:8000"
const hint = "it must be a Pico node's upstream port (8001 by default)"

const answer = (status: number, message: string, headers: Record<string, string> = {}) =>
  judgeConnectFailure(new TunnelConnectError({ reason: "refused", status, headers, message }), url)

const stop = (message: string) => ({ _tag: "Stop", reason: "not an upstream port", message })

describe("what a failed connect to the server means", () => {
  it("retries when no answer came: refused, reset, timed out, DNS", () => {
    expect(
      judgeConnectFailure(
        new TunnelConnectError({ reason: "unreachable", message: "connect ECONNREFUSED" }),
        url,
      ),
    ).toEqual({
      _tag: "Retry",
    })
  })

  it("retries a balancer's or a restarting node's 5xx, 408 and 429", () => {
    for (const status of [500, 502, 503, 504, 408, 429]) {
      expect(answer(status, `HTTP ${status}`, { "content-type": "text/html" })).toEqual({ _tag: "Retry" })
    }
  })

  it("stops on 401 and 403 with the server's reason", () => {
    expect(answer(401, "invalid token")).toEqual({
      _tag: "Stop",
      reason: "refused",
      message: "server refused the connection: invalid token",
    })
    expect(answer(403, "HTTP 403 Forbidden")).toMatchObject({ _tag: "Stop", reason: "refused" })
  })

  it("recognises a Pico proxy port by its error header, whatever the status", () => {
    expect(proxyErrorHeader).toBe(picoErrorHeader)
    expect(
      answer(400, "missing pico endpoint id", { [proxyErrorHeader]: "missing pico endpoint id" }),
    ).toEqual(
      stop(
        `--server.url ${url} is a Pico proxy port (it answered HTTP 400 Bad Request: missing pico endpoint id); ${hint}`,
      ),
    )
    // A dotted host name reads as an endpoint id on the proxy port: no such endpoint, 503, still the proxy port.
    expect(answer(503, "endpoint not found", { [proxyErrorHeader]: "endpoint not found" })).toEqual(
      stop(
        `--server.url ${url} is a Pico proxy port (it answered HTTP 503 Service Unavailable: endpoint not found); ${hint}`,
      ),
    )
    expect(answer(401, "invalid token", { [proxyErrorHeader]: "invalid token" })).toMatchObject({
      reason: "not an upstream port",
    })
  })

  it("recognises a Pico admin port by its header", () => {
    expect(answer(404, "not found", { [adminHeader]: "1" })).toEqual(
      stop(`--server.url ${url} is a Pico admin port (it answered HTTP 404 Not Found: not found); ${hint}`),
    )
  })

  it("recognises the upstream port reached at the wrong path by its header", () => {
    expect(answer(404, "not found", { [upstreamHeader]: "1" })).toEqual(
      stop(
        `--server.url ${url} reached a Pico upstream port at the wrong path (it answered HTTP 404 Not Found: not found); give the node's URL without a path, or the path a proxy in front of it strips`,
      ),
    )
  })

  it("stops on any other answer, describing it in a few words", () => {
    expect(answer(200, "HTTP 200 OK", { "content-type": "text/html; charset=utf-8" })).toEqual(
      stop(`--server.url ${url} is not a Pico upstream port (it answered HTTP 200 OK, text/html); ${hint}`),
    )
    expect(answer(404, "HTTP 404 Not Found")).toEqual(
      stop(`--server.url ${url} is not a Pico upstream port (it answered HTTP 404 Not Found); ${hint}`),
    )
    expect(
      answer(301, "HTTP 301 Moved Permanently", { location: "https://pico.example.com/pico/v1/listener/e" }),
    ).toEqual(
      stop(
        `--server.url ${url} is not a Pico upstream port (it answered HTTP 301 Moved Permanently, to https://pico.example.com/pico/v1/listener/e); ${hint}`,
      ),
    )
    // A JSON error's words are kept.
    expect(answer(426, "expected a websocket upgrade")).toEqual(
      stop(
        `--server.url ${url} is not a Pico upstream port (it answered HTTP 426 Upgrade Required: expected a websocket upgrade); ${hint}`,
      ),
    )
  })
})
