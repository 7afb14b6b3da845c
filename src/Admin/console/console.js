// Pico's web console: plain DOM code served by the admin port itself (no CDN, no framework), reading the same
// admin API as `pico status`. The overview is refreshed every few seconds; captured exchanges arrive pushed, as
// server-sent events read through fetch (EventSource cannot send the admin token).

const OVERVIEW_EVERY_MS = 3000
const $ = (id) => document.getElementById(id)

// --- The admin API, with the token when the port requires one ---

let token = sessionStorage.getItem("pico-admin-token") ?? ""

const api = async (path, options = {}) => {
  const headers = {
    ...(options.headers ?? {}),
    ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
  }
  const response = await fetch(path, { ...options, headers })
  if (response.status === 401) {
    $("login").hidden = false
    throw new Error("the admin port wants a token")
  }
  return response
}

const apiJson = async (path, options) => {
  const response = await api(path, options)
  const body = await response.json()
  if (!response.ok) throw new Error(body.error ?? `status ${response.status}`)
  return body
}

const say = (text) => {
  $("status").textContent = text
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault()
  token = $("token").value.trim()
  sessionStorage.setItem("pico-admin-token", token)
  $("login").hidden = true
  refreshOverview()
})

// --- Small DOM helpers ---

const cell = (text, className) => {
  const td = document.createElement("td")
  td.textContent = text
  if (className !== undefined) td.className = className
  return td
}

const row = (...cells) => {
  const tr = document.createElement("tr")
  tr.append(...cells)
  return tr
}

const button = (label, onClick, className) => {
  const b = document.createElement("button")
  b.type = "button"
  b.textContent = label
  if (className !== undefined) b.className = className
  b.addEventListener("click", onClick)
  return b
}

// --- Overview: nodes, endpoints and request rates ---

/** The previous traffic sample, to turn counters into rates. */
let previous = { at: 0, nodes: new Map(), endpoints: new Map() }

const rate = (count, before, seconds) =>
  before === undefined || seconds <= 0 ? "…" : ((count - before) / seconds).toFixed(1)

const refreshOverview = async () => {
  try {
    const [nodes, traffic] = await Promise.all([
      apiJson("/status/cluster/nodes"),
      apiJson("/status/proxy/traffic"),
    ])
    const now = performance.now()
    const seconds = (now - previous.at) / 1000
    const byNode = new Map(traffic.nodes.map((node) => [node.node, node]))
    $("nodes").replaceChildren(
      ...nodes.map((node) => {
        const requests = byNode.get(node.id)?.requests
        return row(
          cell(node.id),
          cell(node.status),
          cell(node.proxy_addr),
          cell(node.admin_addr),
          cell(requests === undefined ? "?" : rate(requests, previous.nodes.get(node.id), seconds), "number"),
        )
      }),
    )
    const endpointRows = []
    const endpointCounts = new Map()
    const ids = new Set()
    for (const node of traffic.nodes)
      for (const [endpoint, info] of Object.entries(node.endpoints)) {
        const key = `${endpoint} ${node.node}`
        endpointCounts.set(key, info.requests)
        ids.add(endpoint)
        endpointRows.push(
          row(
            cell(endpoint),
            cell(node.node),
            cell(info.upstreams.join(", ")),
            cell(rate(info.requests, previous.endpoints.get(key), seconds), "number"),
            (() => {
              const td = document.createElement("td")
              td.append(button(`Inspect ${endpoint}`, () => inspect(endpoint)))
              return td
            })(),
          ),
        )
      }
    $("endpoints").replaceChildren(...endpointRows)
    $("endpoint-ids").replaceChildren(
      ...[...ids].sort().map((id) => Object.assign(document.createElement("option"), { value: id })),
    )
    previous = {
      at: now,
      nodes: new Map(traffic.nodes.map((node) => [node.node, node.requests])),
      endpoints: endpointCounts,
    }
    const missing = [...nodes.filter((node) => node.status !== "active"), ...traffic.missing]
    say(
      missing.length === 0
        ? `${nodes.length} nodes`
        : `${nodes.length} nodes, ${missing.length} not answering`,
    )
  } catch (error) {
    say(`overview: ${error.message}`)
  }
}

// --- Inspector: the live list of one endpoint's exchanges ---

let following // the AbortController of the event stream being read
let shown = [] // the exchanges listed, newest first
let selected // the exchange whose detail is open
const MAX_SHOWN = 500

const endpointPath = (endpoint, rest = "") => `/status/proxy/endpoints/${encodeURIComponent(endpoint)}${rest}`

const exchangeRow = (exchange) => {
  const tr = row(
    cell(new Date(exchange.started).toLocaleTimeString()),
    cell(exchange.node),
    (() => {
      const td = document.createElement("td")
      const label = `${exchange.method} ${exchange.path}${exchange.replay_of === undefined ? "" : " (replay)"}`
      td.append(button(label, () => showDetail(exchange), "link"))
      return td
    })(),
    cell(
      exchange.status === null ? "…" : String(exchange.status),
      exchange.status >= 500 ? "status-error" : "",
    ),
    cell(exchange.duration_ms === null ? "" : `${exchange.duration_ms.toFixed(1)} ms`, "number"),
  )
  if (selected !== undefined && selected.id === exchange.id && selected.node === exchange.node)
    tr.className = "selected"
  return tr
}

const renderList = () => $("exchanges").replaceChildren(...shown.map(exchangeRow))

const captureButton = async (endpoint) => {
  const state = await apiJson(endpointPath(endpoint, "/capture"))
  const on = state.capturing.length > 0
  $("capture-state").textContent = on
    ? `captured on ${state.capturing.join(", ")}`
    : "not captured: start capturing to see its requests"
  const toggle = $("capture-toggle")
  toggle.hidden = false
  toggle.textContent = on ? "Stop capture" : "Start capture"
  toggle.onclick = async () => {
    await apiJson(endpointPath(endpoint, "/capture"), { method: on ? "DELETE" : "PUT" })
    await captureButton(endpoint)
  }
}

/** Reads `data:` events from a fetch response body until it ends or is aborted. */
const readEvents = async (response, onEvent) => {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let partial = ""
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    partial += value
    const frames = partial.split("\n\n")
    partial = frames.pop()
    for (const frame of frames)
      for (const line of frame.split("\n")) if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)))
  }
}

const inspect = async (endpoint) => {
  $("endpoint").value = endpoint
  following?.abort()
  following = new AbortController()
  const { signal } = following
  shown = []
  selected = undefined
  $("detail").hidden = true
  renderList()
  try {
    await captureButton(endpoint)
    // Follow first, then list: an exchange finishing in between shows up at least once.
    const stream = await api(`${endpointPath(endpoint, "/requests")}?follow`, { signal })
    const listed = await apiJson(endpointPath(endpoint, "/requests"))
    const seen = new Set(shown.map((exchange) => `${exchange.node} ${exchange.id}`))
    shown = [...shown, ...listed.exchanges.filter((exchange) => !seen.has(`${exchange.node} ${exchange.id}`))]
    renderList()
    await readEvents(stream, (exchange) => {
      shown = [
        exchange,
        ...shown.filter((old) => old.id !== exchange.id || old.node !== exchange.node),
      ].slice(0, MAX_SHOWN)
      renderList()
    })
  } catch (error) {
    if (!signal.aborted) say(`inspector: ${error.message}`)
  }
}

$("choose").addEventListener("submit", (event) => {
  event.preventDefault()
  inspect($("endpoint").value.trim())
})

// --- Detail: heads, timing, bodies ---

const bytesOf = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))

const headerValue = (headers, name) => headers.find(([key]) => key.toLowerCase() === name)?.[1] ?? ""

/** Text as text, JSON pretty-printed, anything else (binary) as a hex dump. */
const preview = (body, headers) => {
  const bytes = bytesOf(body.base64)
  const suffix = body.truncated ? `\n… (${body.size - bytes.length} more bytes not captured)` : ""
  if (bytes.length === 0) return body.size === 0 ? "(empty)" : `(${body.size} bytes, none captured)`
  let text
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes)
  } catch {
    text = undefined
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what mark a body as binary.
  if (text !== undefined && !/[\u0000-\u0008\u000e-\u001f]/.test(text)) {
    if (headerValue(headers, "content-type").includes("json"))
      try {
        return JSON.stringify(JSON.parse(text), null, 2) + suffix
      } catch {
        // Not whole (truncated) or not JSON after all: shown as text.
      }
    return text + suffix
  }
  const lines = []
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const chunk = [...bytes.subarray(offset, offset + 16)]
    const hex = chunk.map((byte) => byte.toString(16).padStart(2, "0")).join(" ")
    const ascii = chunk
      .map((byte) => (byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : "."))
      .join("")
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`)
  }
  return lines.join("\n") + suffix
}

const headersTable = (headers, truncated) => {
  const table = document.createElement("table")
  const body = document.createElement("tbody")
  body.append(...headers.map(([name, value]) => row(cell(name), cell(value))))
  if (truncated) body.append(row(cell("…"), cell("more headers not captured")))
  table.append(body)
  return table
}

const part = (head, extraLine) => {
  const pre = document.createElement("pre")
  pre.textContent = preview(head.body, head.headers)
  const line = document.createElement("p")
  line.textContent = extraLine
  return [line, headersTable(head.headers, head.headers_truncated), pre]
}

const showDetail = async (exchange) => {
  selected = exchange
  renderList()
  try {
    const detail = await apiJson(
      `${endpointPath(exchange.endpoint, `/requests/${encodeURIComponent(exchange.id)}`)}?forward=${encodeURIComponent(exchange.node)}`,
    )
    $("detail").hidden = false
    $("detail-heading").textContent = `${detail.method} ${detail.path}`
    const timing = [
      `request id ${detail.id}`,
      `on ${detail.node}`,
      detail.upstream === null
        ? "not sent upstream"
        : `${detail.upstream.route} via ${detail.upstream.session}`,
      detail.duration_ms === null ? "in flight" : `${detail.duration_ms.toFixed(1)} ms in all`,
      detail.upstream_ms === null ? "" : `${detail.upstream_ms.toFixed(1)} ms to the response head`,
      detail.error === undefined ? "" : `Pico answered: ${detail.error}`,
      detail.replay_of === undefined ? "" : `replay of ${detail.replay_of}`,
    ]
    $("detail-meta").textContent = timing.filter((text) => text !== "").join(" · ")
    $("detail-request").replaceChildren(...part(detail.request, `HTTP/${detail.request.http_version}`))
    $("detail-response").replaceChildren(
      ...(detail.response === null
        ? [Object.assign(document.createElement("p"), { textContent: `status ${detail.status ?? "…"}` })]
        : part(detail.response, `${detail.response.status} ${detail.response.status_message}`)),
    )
    $("replay-result").textContent = ""
    $("replay").onclick = () => replay(detail)
    $("detail-heading").focus()
  } catch (error) {
    say(`detail: ${error.message}`)
  }
}

const replay = async (detail) => {
  $("replay-result").textContent = "Replaying…"
  try {
    const result = await apiJson(
      `${endpointPath(detail.endpoint, `/requests/${encodeURIComponent(detail.id)}/replay`)}?forward=${encodeURIComponent(detail.node)}`,
      { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
    )
    $("replay-result").textContent = `Replayed as ${result.request_id}: status ${result.status}`
  } catch (error) {
    $("replay-result").textContent = `Replay failed: ${error.message}`
  }
}

refreshOverview()
setInterval(refreshOverview, OVERVIEW_EVERY_MS)
const wanted = new URLSearchParams(location.search).get("endpoint")
if (wanted !== null) inspect(wanted)
