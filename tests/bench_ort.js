// bench_ort.js — ONNX Runtime's time for the CIFAR-10 test set, for comparison with
// `rankscope bench` / `rankscope eval` in the same session.
//
// usage: node tests/bench_ort.js [MODEL.onnx] [--data DIR | --images FILE] [--threads N] [--batch B]
//                               [--reps R] [--json]
//   MODEL defaults to assets/lenet-cifar10.onnx; DIR to $RANKSCOPE_DATA (must hold test_batch.bin);
//   --images FILE: any file of CIFAR-10 records (`rankscope bench` hands over the images it timed).
//   Images are normalised exactly as rankscope does: x/127.5 - 1 (= (x/255 - 0.5)/0.5), CHW.
//   Timed: the session.run calls over all images (data already normalised, session created,
//   one warm-up pass), best and median of R passes. Needs `cd tests && npm install --ignore-scripts`.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const o = { model: null, data: process.env.RANKSCOPE_DATA || null, images: null, threads: 2, batch: 1000,
              reps: 5, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--data') o.data = next();
    else if (a === '--images') o.images = next();
    else if (a === '--threads') o.threads = parseInt(next(), 10);
    else if (a === '--batch') o.batch = parseInt(next(), 10);
    else if (a === '--reps') o.reps = parseInt(next(), 10);
    else if (a === '--json') o.json = true;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else o.model = a;
  }
  if (!o.model) o.model = path.join(__dirname, '..', 'assets', 'lenet-cifar10.onnx');
  if (!o.images && !o.data) throw new Error('no data: pass --data DIR, --images FILE or set RANKSCOPE_DATA');
  return o;
}

function loadTest(file) {
  const buf = fs.readFileSync(file);
  const rec = 3073;
  if (buf.length % rec !== 0) throw new Error(`${file}: size ${buf.length} is not a multiple of ${rec}`);
  const n = buf.length / rec;
  const x = new Float32Array(n * 3072);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = buf[i * rec];
    const src = i * rec + 1, dst = i * 3072;
    for (let j = 0; j < 3072; j++) x[dst + j] = buf[src + j] / 127.5 - 1;
  }
  return { n, x, labels };
}

function ortVersion() {
  try {
    return require('onnxruntime-node/package.json').version;
  } catch (e) {
    return '?';
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const { n, x, labels } = loadTest(o.images || path.join(o.data, 'test_batch.bin'));
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all' });
  const inName = session.inputNames[0], outName = session.outputNames[0];
  const batches = [];
  for (let first = 0; first < n; first += o.batch) {
    const m = Math.min(o.batch, n - first);
    batches.push({ first, m,
      t: new ort.Tensor('float32', x.subarray(first * 3072, (first + m) * 3072), [m, 3, 32, 32]) });
  }
  let correct = 0;
  const pass = async (score) => {
    const t0 = process.hrtime.bigint();
    for (const b of batches) {
      const r = await session.run({ [inName]: b.t });
      if (score) {
        const y = r[outName].data, k = y.length / b.m;
        for (let i = 0; i < b.m; i++) {
          let best = 0;
          for (let j = 1; j < k; j++) if (y[i * k + j] > y[i * k + best]) best = j;
          if (best === labels[b.first + i]) correct++;
        }
      }
    }
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  await pass(true); // warm-up, and accuracy for cross-checking against rankscope eval
  const secs = [];
  for (let r = 0; r < o.reps; r++) secs.push(await pass(false));
  secs.sort((a, b) => a - b);
  const best = secs[0], median = secs[Math.floor(secs.length / 2)];
  if (o.json) {
    console.log(JSON.stringify({ runtime: `onnxruntime-node ${ortVersion()}`, model: o.model, images: n,
      threads: o.threads, batch: o.batch, reps: o.reps, seconds: best, seconds_median: median,
      images_per_second: n / best, accuracy: correct / n }));
  } else {
    console.log(`ONNX Runtime (onnxruntime-node, ${o.threads} intra-op threads, batch ${o.batch}): ` +
      `${n} images in ${best.toFixed(4)} s best, ${median.toFixed(4)} s median of ${o.reps} ` +
      `(${Math.round(n / best)} images/s), accuracy ${(100 * correct / n).toFixed(2)} %`);
  }
}

main().catch((err) => {
  console.error(`bench_ort: ${err.message}`);
  process.exit(1);
});
