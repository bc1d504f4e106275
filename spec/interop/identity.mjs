// @azure/identity against signalr-emulator: gets a token with one credential kind and
// prints one JSON line with the token's decoded header and claims and whether Node's own
// crypto verified its signature against the tenant's published JWKS. Never prints a token
// or a secret. Usage: node identity.mjs <secret|certificate|workload|imds|appservice>
// Inputs come from the environment (see spec/interop/identity_spec.lua).
import https from "node:https";
import crypto from "node:crypto";
import {
  ClientSecretCredential,
  ClientCertificateCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
} from "@azure/identity";

const SCOPE = "https://signalr.azure.com/.default";
const env = process.env;
const mode = process.argv[2];
// A custom authority: skip instance discovery (it would call login.microsoftonline.com).
const authority = { authorityHost: env.EMU_AUTHORITY, disableInstanceDiscovery: true };

function credential() {
  switch (mode) {
    case "secret":
      return new ClientSecretCredential(env.EMU_TENANT, env.EMU_CLIENT_ID, env.EMU_CLIENT_SECRET, authority);
    case "certificate":
      return new ClientCertificateCredential(env.EMU_TENANT, env.EMU_CLIENT_ID,
        { certificatePath: env.EMU_CERT_PATH }, authority);
    case "workload":
      return new WorkloadIdentityCredential({ tenantId: env.EMU_TENANT, clientId: env.EMU_CLIENT_ID,
        tokenFilePath: env.EMU_TOKEN_FILE, ...authority });
    case "imds":
    case "appservice": {
      const id = env.EMU_MI_CLIENT_ID ? { clientId: env.EMU_MI_CLIENT_ID }
        : env.EMU_MI_RESOURCE_ID ? { resourceId: env.EMU_MI_RESOURCE_ID }
        : env.EMU_MI_OBJECT_ID ? { objectId: env.EMU_MI_OBJECT_ID } : undefined;
      return id ? new ManagedIdentityCredential(id) : new ManagedIdentityCredential();
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

function decodePart(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

function getJson(url) {
  return new Promise((resolve, reject) => {
    https.get(url, (res) => {
      let data = "";
      res.on("data", (c) => { data += c; });
      res.on("end", () => {
        try { resolve(JSON.parse(data)); } catch (e) { reject(e); }
      });
    }).on("error", reject);
  });
}

async function main() {
  const token = await credential().getToken(SCOPE);
  const [h, c, s] = token.token.split(".");
  const header = decodePart(h);
  const claims = decodePart(c);
  const jwks = await getJson(`${env.EMU_AUTHORITY}/${claims.tid}/discovery/v2.0/keys`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  const verified = !!jwk && crypto.verify("RSA-SHA256", Buffer.from(`${h}.${c}`),
    crypto.createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
  process.stdout.write(JSON.stringify({ ok: true, header, claims, verified,
    expiresOnTimestamp: token.expiresOnTimestamp }) + "\n");
}

main().catch((err) => {
  // The message of an @azure/identity error names the credential and Entra's code.
  const message = String(err && err.message || err).split("\n")[0].slice(0, 500);
  process.stdout.write(JSON.stringify({ ok: false, name: err && err.name, message }) + "\n");
  process.exitCode = 1;
});
