// Preloaded into the MCP reference server (`node --require`): server-everything listens
// with `app.listen(PORT)`, on every interface, and has no setting for the address. Here a
// listen() given a port and no host binds 127.0.0.1, so the upstream is reachable only
// from this machine (the gateway, and the tests that compare with a direct call).
"use strict";
const net = require("node:net");

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const isPort = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (isPort && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
