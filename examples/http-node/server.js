// A tiny HTTP app for nubo's node runtime: answers every request with a greeting that names
// the Node.js version and the address the request arrived on.
const http = require("http");
const port = Number(process.env.PORT || 8080);

http.createServer((req, res) => {
  const body = `Hello from nubo! (Node.js ${process.version}, instance ${req.socket.localAddress})\n`;
  res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
  res.end(body);
}).listen(port, "0.0.0.0", () => console.log(`listening on :${port}`));
