// ort_logits.js — run an ONNX model in ONNX Runtime (onnxruntime-node) for tests/interop.sh.
// usage: node ort_logits.js MODEL.onnx INPUT.f32 OUT.f32 [MODEL INPUT OUT]...
// INPUT.f32 is raw little-endian float32 images (n,3,32,32), n = file size / (3*32*32*4);
// OUT.f32 receives the model's first output, raw little-endian float32, row-major.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function run(modelPath, inputPath, outPath) {
  const bytes = fs.readFileSync(inputPath);
  const perImage = 3 * 32 * 32;
  if (bytes.length % (perImage * 4) !== 0) {
    throw new Error(`${inputPath}: size ${bytes.length} is not a multiple of ${perImage * 4}`);
  }
  const n = bytes.length / (perImage * 4);
  const x = new Float32Array(n * perImage);
  for (let i = 0; i < x.length; i++) x[i] = bytes.readFloatLE(4 * i);
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, [n, 3, 32, 32]) };
  const result = await session.run(feeds);
  const y = result[session.outputNames[0]];
  const out = Buffer.alloc(4 * y.data.length);
  for (let i = 0; i < y.data.length; i++) out.writeFloatLE(y.data[i], 4 * i);
  fs.writeFileSync(outPath, out);
  console.log(`${modelPath}: ${y.dims.join('x')} logits -> ${outPath}`);
}

// Several MODEL INPUT OUT triples run in one process (node's start-up dominates small models);
// one that fails is reported and the rest still run (exit status 1 at the end).
async function main() {
  const args = process.argv.slice(2);
  if (args.length === 0 || args.length % 3 !== 0) {
    console.error('usage: node ort_logits.js MODEL.onnx INPUT.f32 OUT.f32 [MODEL INPUT OUT]...');
    process.exit(2);
  }
  let failed = false;
  for (let k = 0; k < args.length; k += 3) {
    try {
      await run(args[k], args[k + 1], args[k + 2]);
    } catch (err) {
      console.error(`ort_logits: ${args[k]}: ${err.message}`);
      failed = true;
    }
  }
  if (failed) process.exit(1);
}

main().catch((err) => {
  console.error(`ort_logits: ${err.message}`);
  process.exit(1);
});
