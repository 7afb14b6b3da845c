// The local service of bench/updown.sh: GET sends SIZE bytes, with backpressure; POST reads the body and answers
// with its length. Usage: node bench/transfer-service.mjs PORT SIZE
import http from "node:http"

const [port, size] = process.argv.slice(2).map(Number)
const chunk = Buffer.alloc(256 * 1024, 97)

http
  .createServer((req, res) => {
    if (req.method === "POST") {
      let received = 0
      req.on("data", (piece) => {
        received += piece.length
      })
      req.on("end", () => res.end(String(received)))
      return
    }
    res.writeHead(200, { "content-length": size })
    let sent = 0
    const pump = () => {
      while (sent < size) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - sent))
        sent += piece.length
        if (!res.write(piece)) return res.once("drain", pump)
      }
      res.end()
    }
    pump()
  })
  .listen(port, "127.0.0.1")
