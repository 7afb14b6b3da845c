// The groups `npm run mutate` tests (docs/testing.md): the modules each mutates, and the unit tests that judge
// them, so each module is held to its own fast tests. A `:from-to` suffix mutates only those lines.
export const groups = {
  tunnel: {
    mutate: ["src/Tunnel/internal/Frame.ts", "src/Tunnel/internal/Session.ts"],
    tests: [
      "test/TunnelFrame.test.ts",
      "test/TunnelSession.test.ts",
      "test/TunnelHeartbeats.test.ts",
      "test/AgentSession.test.ts",
    ],
  },
  heartbeats: {
    // Less its warning's `subsystem` and `timeout` annotations (lines 146-147). TunnelHeartbeats.test.ts drives
    // it on the TestClock, and AgentSession.test.ts over an in-memory link.
    mutate: ["src/Tunnel/internal/Heartbeats.ts:1-145", "src/Tunnel/internal/Heartbeats.ts:148-183"],
    tests: ["test/TunnelHeartbeats.test.ts", "test/AgentSession.test.ts"],
  },
  upgradeClients: {
    // The HTTP upgrade clients (the agent's WebSocket handshake, Forward.connect's pico-tcp one), the CONNECT proxy
    // and the agent's reused read buffer, against scripted servers, a TLS server and Pico's own endpoint.
    mutate: [
      "src/internal/HttpUpgrade.ts",
      "src/Tunnel/internal/WebSocketClient.ts",
      "src/Tunnel/internal/ForwardProxy.ts",
      "src/Tunnel/internal/LentReads.ts",
    ],
    tests: [
      "test/TunnelConnect.test.ts",
      "test/ForwardConnect.test.ts",
      "test/ForwardProxy.test.ts",
      "test/LentReads.test.ts",
    ],
  },
  auth: { mutate: ["src/Auth/Token.ts"], tests: ["test/Auth.test.ts"] },
  gossip: {
    mutate: ["src/Gossip/State.ts", "src/Gossip/FailureDetector.ts"],
    tests: ["test/GossipState.test.ts", "test/GossipFailureDetector.test.ts"],
  },
  gossipStreams: {
    // The gossip port's TCP frames and its limits on peers that have not authenticated, and the throttled warning
    // they share with the HTTP ports' connection caps, over real sockets.
    mutate: ["src/Gossip/Streams.ts", "src/internal/ThrottledLog.ts"],
    tests: ["test/GossipNetTransport.test.ts", "test/ThrottledLog.test.ts"],
  },
  responseReading: {
    // How the proxy reads a service's response off a tunnel stream (framing, refusals, reuse), over an in-memory
    // session, and Node's parser as it is driven for that.
    mutate: ["src/Tunnel/internal/HttpConnections.ts", "src/Tunnel/internal/ResponseParser.ts"],
    tests: ["test/HttpConnections.test.ts", "test/ResponseParser.test.ts"],
  },
  headers: { mutate: ["src/Proxy/Headers.ts"], tests: ["test/ProxyHeaders.test.ts"] },
  endpointId: {
    mutate: ["src/Proxy/EndpointId.ts", "src/Domain/EndpointId.ts"],
    tests: ["test/EndpointId.test.ts"],
  },
  peerProof: { mutate: ["src/Proxy/PeerProof.ts"], tests: ["test/PeerProof.test.ts"] },
  webSocketFrames: { mutate: ["src/Proxy/WebSocketFrames.ts"], tests: ["test/ProxyWebSocketFrames.test.ts"] },
}

/** The group named by MUTATE_GROUP, which scripts/mutate.mjs sets for each Stryker run. */
export const currentGroup = () => {
  const name = process.env.MUTATE_GROUP ?? ""
  const group = groups[name]
  if (group === undefined) throw new Error(`MUTATE_GROUP must be one of ${Object.keys(groups).join(", ")}`)
  return { name, ...group }
}
