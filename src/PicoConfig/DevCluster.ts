import { bindAddr, logSettingsFor, serverSubsystems } from "./Server.js"
import * as Setting from "./Setting.js"

/** The flags of `pico dev cluster`: how many nodes, and where its load balancer listens for each port. */
export const devClusterSettings = {
  nodes: Setting.integer("How many nodes to start.", 3, 1, 50),
  proxy: { bindAddr: bindAddr("proxy clients", ":8000") },
  upstream: { bindAddr: bindAddr("agents", ":8001") },
  admin: { bindAddr: bindAddr("the admin API", ":8002") },
  // Its nodes run in the process, beside its own lines.
  log: logSettingsFor([...serverSubsystems, "dev"], "proxy,dev"),
}
