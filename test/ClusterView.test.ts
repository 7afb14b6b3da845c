import { describe, expect, it } from "vitest"
import { ClusterView } from "../src/Registry/ClusterView.js"

const addNode = (view: ClusterView, id: string, endpoints: Record<string, number> = {}) => {
  view.apply({ _tag: "NodeJoined", nodeId: id })
  view.apply({ _tag: "KeyUpdated", nodeId: id, key: "proxy_addr", value: `${id}:8000` })
  view.apply({ _tag: "KeyUpdated", nodeId: id, key: "admin_addr", value: `${id}:8002` })
  for (const [endpoint, count] of Object.entries(endpoints)) {
    view.apply({ _tag: "KeyUpdated", nodeId: id, key: `endpoint:${endpoint}`, value: String(count) })
  }
}

describe("ClusterView", () => {
  it("keeps a node pending until both addresses are known", () => {
    const view = new ClusterView()
    view.apply({ _tag: "NodeJoined", nodeId: "n1" })
    view.apply({ _tag: "KeyUpdated", nodeId: "n1", key: "proxy_addr", value: "10.0.0.1:8000" })
    view.apply({ _tag: "KeyUpdated", nodeId: "n1", key: "endpoint:e", value: "1" })
    expect(view.list()).toEqual([])
    expect(view.pick("e", new Set())).toBeUndefined()
    view.apply({ _tag: "KeyUpdated", nodeId: "n1", key: "admin_addr", value: "10.0.0.1:8002" })
    expect(view.pick("e", new Set())?.proxyAddr).toBe("10.0.0.1:8000")
  })

  it("routes only to active nodes, skipping excluded ones", () => {
    const view = new ClusterView()
    addNode(view, "a", { e: 1 })
    addNode(view, "b", { e: 1 })
    view.apply({ _tag: "NodeStatusChanged", nodeId: "a", status: "unreachable" })
    for (let i = 0; i < 20; i++) expect(view.pick("e", new Set())?.id).toBe("b")
    expect(view.pick("e", new Set(["b"]))).toBeUndefined()
    view.apply({ _tag: "NodeStatusChanged", nodeId: "a", status: "active" })
    expect(view.pick("e", new Set(["b"]))?.id).toBe("a")
  })

  it("weights the choice by upstream count", () => {
    let draw = 0
    const draws = [0.0, 0.24, 0.26, 0.99]
    const view = new ClusterView(() => draws[draw++] as number)
    addNode(view, "small", { e: 1 })
    addNode(view, "big", { e: 3 })
    expect(draws.map(() => view.pick("e", new Set())?.id)).toEqual(["small", "small", "big", "big"])
  })

  it("forgets endpoints on delete and nodes on removal", () => {
    const view = new ClusterView()
    addNode(view, "a", { e: 2, f: 1 })
    view.apply({ _tag: "KeyDeleted", nodeId: "a", key: "endpoint:e" })
    expect(view.pick("e", new Set())).toBeUndefined()
    expect(view.get("a")?.endpoints).toEqual(new Map([["f", 1]]))
    view.apply({ _tag: "KeyUpdated", nodeId: "a", key: "endpoint:f", value: "garbage" })
    expect(view.pick("f", new Set())).toBeUndefined()
    view.apply({ _tag: "NodeRemoved", nodeId: "a" })
    expect(view.list()).toEqual([])
  })

  it("learns each endpoint's kind from its gossiped value: a bare count is HTTP, '<count> tcp' is TCP", () => {
    const view = new ClusterView()
    addNode(view, "a")
    view.apply({ _tag: "KeyUpdated", nodeId: "a", key: "endpoint:web", value: "2" })
    view.apply({ _tag: "KeyUpdated", nodeId: "a", key: "endpoint:db", value: "1 tcp" })
    expect(view.kindOf("web")).toBe("http")
    expect(view.kindOf("db")).toBe("tcp")
    expect(view.kindOf("nobody")).toBeUndefined()
    expect(view.pick("db", new Set())?.tcpEndpoints).toEqual(new Set(["db"]))
    expect(view.get("a")?.endpoints).toEqual(
      new Map([
        ["web", 2],
        ["db", 1],
      ]),
    )
    // The endpoint changes kind when its agent does; a kind nobody knows is malformed, like a bad count.
    view.apply({ _tag: "KeyUpdated", nodeId: "a", key: "endpoint:db", value: "1" })
    expect(view.kindOf("db")).toBe("http")
    view.apply({ _tag: "KeyUpdated", nodeId: "a", key: "endpoint:db", value: "1 udp" })
    expect(view.kindOf("db")).toBeUndefined()
    // Only active nodes say what an endpoint is.
    view.apply({ _tag: "NodeStatusChanged", nodeId: "a", status: "unreachable" })
    expect(view.kindOf("web")).toBeUndefined()
  })
})
