/**
 * Pico as a library: every subsystem is an Effect service with its layers, and the three programs (`pico server`,
 * `pico agent`, `pico status`) are layer graphs over them, so a program can run a node, embed an agent, or swap
 * one piece (Auth, Gossip, the Tunnel, the StatusClient) for its own. docs/library.md shows how they compose.
 */
export * as Admin from "./Admin.js"
export * as Agent from "./Agent.js"
export * as Auth from "./Auth.js"
export { EndpointId } from "./Domain/EndpointId.js"
export * as Forward from "./Forward.js"
export * as Gossip from "./Gossip.js"
export * as PicoConfig from "./PicoConfig.js"
export * as PicoLogger from "./PicoLogger.js"
export * as Proxy from "./Proxy.js"
export { agentLayer } from "./programs/agent.js"
export { forwardTcpLayer } from "./programs/forward.js"
export { serverLayer } from "./programs/server.js"
export { type StatusQuery, statusProgram, statusQueries } from "./programs/status.js"
export * as Registry from "./Registry.js"
export * as Shutdown from "./Shutdown.js"
export * as Status from "./Status.js"
export * as Tunnel from "./Tunnel.js"
export * as UpstreamListener from "./UpstreamListener.js"
