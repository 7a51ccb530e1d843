// Runs an exported model with ONNX Runtime (onnxruntime-node, CPU) over an IDX image file, as
// a deployment would: pixels / 255 into `input` [n, 1, rows, cols], `batch` images per run
// (the last run may be smaller). Writes the probabilities as raw float32 rows to `out` and
// prints one JSON line: the graph's input/output names, the output dims seen, the batch sizes
// run, and (with a `logits` output) the largest |softmax(logits) - probabilities|.
//   node ort_run.js <model.onnx> <images-idx3-ubyte[.gz]> <out.f32> <batch>
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

async function main() {
  const [modelPath, imagesPath, outPath, batchArg] = process.argv.slice(2);
  let raw = fs.readFileSync(imagesPath);
  if (raw[0] === 0x1f && raw[1] === 0x8b) raw = zlib.gunzipSync(raw);
  if (raw.readUInt32BE(0) !== 0x803) throw new Error(`${imagesPath}: not an IDX image file`);
  const count = raw.readUInt32BE(4), rows = raw.readUInt32BE(8), cols = raw.readUInt32BE(12);
  const size = rows * cols, batch = Number(batchArg);

  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  const probsOut = new Float32Array(count * 10);
  const seenDims = new Set(), batches = new Set();
  let classes = 0, maxLogitGap = 0;
  for (let first = 0; first < count; first += batch) {
    const n = Math.min(batch, count - first);
    const x = new Float32Array(n * size);
    for (let i = 0; i < n * size; ++i) x[i] = raw[16 + first * size + i] / 255;
    const res = await session.run({ input: new ort.Tensor('float32', x, [n, 1, rows, cols]) });
    const p = res.probabilities;
    seenDims.add(p.dims.join('x'));
    batches.add(n);
    classes = p.dims[1];
    probsOut.set(p.data, first * classes);
    if (res.logits) {
      const l = res.logits.data;
      for (let r = 0; r < n; ++r) {
        let m = -Infinity, s = 0;
        for (let c = 0; c < classes; ++c) m = Math.max(m, l[r * classes + c]);
        for (let c = 0; c < classes; ++c) s += Math.exp(l[r * classes + c] - m);
        for (let c = 0; c < classes; ++c) {
          const gap = Math.abs(Math.exp(l[r * classes + c] - m) / s - p.data[r * classes + c]);
          if (!(gap <= maxLogitGap)) maxLogitGap = gap;  // NaN propagates
        }
      }
    }
  }
  fs.writeFileSync(outPath, Buffer.from(probsOut.buffer, 0, count * classes * 4));
  console.log(JSON.stringify({
    inputs: session.inputNames, outputs: session.outputNames, count, classes,
    dims: [...seenDims], batches: [...batches], max_logit_gap: maxLogitGap,
  }));
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
