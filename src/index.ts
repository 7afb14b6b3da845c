/**
 * Pico as a library: every subsystem is an Effect service with its layers, so a program can run a node, embed
 * an agent, or swap one piece (say, Auth) for its own. docs/library.md shows how they compose.
 */
export * as Admin from "./Admin.js"
export * as Agent from "./Agent.js"
export * as Auth from "./Auth.js"
export { EndpointId } from "./Domain/EndpointId.js"
export * as Gossip from "./Gossip.js"
export * as PicoConfig from "./PicoConfig.js"
export * as PicoLogger from "./PicoLogger.js"
export * as Proxy from "./Proxy.js"
export { agentProgram } from "./programs/agent.js"
export { serverLayer } from "./programs/server.js"
export * as Registry from "./Registry.js"
export * as Shutdown from "./Shutdown.js"
export * as Tunnel from "./Tunnel.js"
export * as UpstreamListener from "./UpstreamListener.js"
