// The service behind the chaos suite's agent, run as its own process on the agent's host:
//   node test/chaos/service.mjs <port>
// GET answers "ok"; a request with a body answers the body's SHA-256 (hex), so the client can tell that every
// byte arrived; a WebSocket echoes each message.
import { createHash } from "node:crypto"
import * as http from "node:http"
import { WebSocketServer } from "ws"

const port = Number(process.argv[2])
const server = http.createServer((req, res) => {
  const hash = createHash("sha256")
  let bytes = 0
  req.on("data", (chunk) => {
    bytes += chunk.length
    hash.update(chunk)
  })
  req.on("end", () => res.end(bytes === 0 ? "ok" : hash.digest("hex")))
})
const webSockets = new WebSocketServer({ server })
webSockets.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })))
server.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ msg: "service listening", port })))
