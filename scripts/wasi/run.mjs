// Runs a wasm32-wasip1 program (a test binary or an example) under Node's built-in WASI,
// inside V8 like Envoy runs the filter. The filter crate imports Envoy's proxy_* host
// calls; none is reached by host-free code, so each is stubbed to throw if it ever is.
// Usage: node scripts/wasi/run.mjs program.wasm [args...]   (cargo's target runner)
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [, , program, ...args] = argv;
const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env,
  preopens: { ".": "." },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const imports = { wasi_snapshot_preview1: wasi.wasiImport };
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "wasi_snapshot_preview1") continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host call ${imp.module}.${imp.name} is not available outside Envoy`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// A cdylib-style `_initialize` next to `_start` confuses wasi.start: hide it.
const exports = { ...instance.exports };
delete exports._initialize;
exit(wasi.start({ exports }) ?? 0);
