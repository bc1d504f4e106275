// The official @microsoft/signalr client against signalr-emulator: connects through
// /client/negotiate with a token the spec signed, then reports every event as one JSON
// line on stdout (connected, message, closed). It answers the server's "ask" invocation
// with a client result, and exits when the connection closes. Never prints the token.
// Inputs (environment): EMU_ENDPOINT, EMU_HUB, EMU_TOKEN; NODE_EXTRA_CA_CERTS trusts the CA.
import * as signalR from "@microsoft/signalr";

const { EMU_ENDPOINT, EMU_HUB, EMU_TOKEN } = process.env;

// The client's own messages may quote URLs carrying access_token: never let one out.
const redact = (s) => String(s).replace(/access_token=[^&\s"']+/g, "access_token=REDACTED")
  .split(EMU_TOKEN).join("REDACTED");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const logger = {
  log(level, message) {
    if (level >= signalR.LogLevel.Warning) process.stderr.write(`[signalr ${level}] ${redact(message)}\n`);
  },
};

const connection = new signalR.HubConnectionBuilder()
  .withUrl(`${EMU_ENDPOINT}/client/?hub=${encodeURIComponent(EMU_HUB)}`, {
    accessTokenFactory: () => EMU_TOKEN,
    transport: signalR.HttpTransportType.WebSockets,
  })
  .configureLogging(logger)
  .build();

connection.on("newMessage", (...args) => { out({ event: "message", args }); });
// a client result: the server's :invoke gets this value back
connection.on("ask", (n) => ({ answer: n * 2 }));
connection.onclose((err) => {
  out({ event: "closed", error: err ? redact(err.message) : null });
  process.exit(0);
});

const timer = setTimeout(() => {
  out({ event: "timeout" });
  process.exit(2);
}, 60000);
timer.unref();

try {
  await connection.start();
  out({ event: "connected", connectionId: connection.connectionId });
} catch (err) {
  out({ event: "failed", error: redact(err && err.message) });
  process.exit(1);
}
