// A client in another language, built from the .proto alone: proves the contract is self-sufficient.
//
//   cd clients/node && npm install && node check.mjs --target 127.0.0.1:50051 --token T [--proto PATH]
//
// Runs Stats, Upsert (vectors), Search, Get, Delete, plus a missing-id Get and a wrong-token call, and prints
// one JSON object with what came back. Exits 1 (with the reason on stderr) when any answer is wrong.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    target: { type: "string", default: "127.0.0.1:50051" },
    token: { type: "string", default: process.env.OMNIEMBED_TOKEN ?? "" },
    proto: { type: "string", default: path.join(here, "..", "..", "proto", "omniembed", "v1", "omniembed.proto") },
  },
});

const definition = protoLoader.loadSync(args.proto, {
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const { OmniEmbed } = grpc.loadPackageDefinition(definition).omniembed.v1;

function connect(token) {
  const client = new OmniEmbed(args.target, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  // call("Search", request) -> Promise of the reply; rejects with the gRPC error (code, details).
  const call = (method, request) => new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](request, metadata, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
  return { client, call };
}

function unit(dim, seed) {
  // Deterministic pseudo-random unit vector (no dependencies): a sine hash per component.
  const v = Array.from({ length: dim }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453 % 1);
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

function expect(condition, message) {
  if (!condition) {
    console.error(`node check failed: ${message}`);
    process.exit(1);
  }
}

async function main() {
  const { client, call } = connect(args.token);
  const report = {};

  const before = await call("Stats", {});
  const dim = before.index_dim;
  expect(dim > 0, `Stats.index_dim is ${dim}`);

  const items = ["node-a", "node-b", "node-c"].map((id, i) => ({
    id,
    vector: { values: unit(dim, i + 1) },
    metadata: { modality: "text", uri: `node://${id}`, payload_json: JSON.stringify({ lang: "js", n: i }) },
  }));
  const up = await call("Upsert", { items });
  report.upserted = up.upserted;
  expect(up.upserted === 3, `Upsert.upserted is ${up.upserted}`);

  const found = await call("Search", { vector: { values: unit(dim, 2) }, k: 2 });
  report.search = found.hits.map((h) => ({ id: h.id, score: Number(h.score.toFixed(4)) }));
  expect(found.hits[0].id === "node-b", `Search top hit is ${found.hits[0]?.id}`);
  expect(JSON.parse(found.hits[0].metadata.payload_json).n === 1, "Search hit metadata lost its payload");

  const filtered = await call("Search", {
    vector: { values: unit(dim, 2) }, k: 5, filter: { payload_json: JSON.stringify({ n: 2 }) },
  });
  report.filtered = filtered.hits.map((h) => h.id);

  const got = await call("Get", { ids: ["node-c"], include_vectors: true });
  report.get = { id: got.items[0].id, values: got.items[0].vector.values.length };

  const del = await call("Delete", { ids: ["node-a", "never-stored"] });
  report.delete = { deleted: del.deleted, not_found: del.not_found };

  try {
    await call("Get", { ids: ["node-a"] });
    expect(false, "Get of a deleted id succeeded");
  } catch (err) {
    report.get_deleted = { code: grpc.status[err.code], details: err.details };
  }

  const intruder = connect("wrong-token");
  try {
    await intruder.call("Stats", {});
    expect(false, "a wrong token was accepted");
  } catch (err) {
    report.wrong_token = { code: grpc.status[err.code], details: err.details };
  }
  intruder.client.close();

  report.count = (await call("Stats", {})).count;
  client.close();
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(`node check failed: ${err.code !== undefined ? grpc.status[err.code] : ""} ${err.details ?? err.stack}`);
  process.exit(1);
});
