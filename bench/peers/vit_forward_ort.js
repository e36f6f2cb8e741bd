// Forward-only ONNX Runtime peer of bench/bench_realscale.sh: the ViT exported by
// bench/peers/export_vit_onnx.py, run by the npm package onnxruntime-node (CPU execution
// provider, graph optimisation "all", intra-op threads = N), on random images already in memory.
//
//   NODE_PATH=<node_modules> node bench/peers/vit_forward_ort.js MODEL.onnx IMG BATCH THREADS
//
// One image warms up, then one batch is timed. Prints
// "PEER onnxruntime <img> forward img/s (<t> threads): <x> img/s" and the peak RSS.
'use strict';
const ort = require('onnxruntime-node');

async function main() {
    const [model, img, batch, threads] = process.argv.slice(2);
    const size = Number(img), b = Number(batch), t = Number(threads);
    const session = await ort.InferenceSession.create(model, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: t,
        interOpNumThreads: 1,
    });
    const images = (n) => {
        const data = new Float32Array(n * 3 * size * size);
        for (let i = 0; i < data.length; i++) data[i] = Math.random() - 0.5;
        return new ort.Tensor('float32', data, [n, 3, size, size]);
    };
    await session.run({pixels: images(1)});
    const x = images(b);
    const t0 = process.hrtime.bigint();
    const out = await session.run({pixels: x});
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (out.cls.dims[0] !== b) throw new Error(`cls has ${out.cls.dims[0]} rows, not ${b}`);
    const s = t > 1 ? 's' : '';
    console.log(`PEER onnxruntime ${size} forward img/s (${t} thread${s}): ${(b / seconds).toFixed(3)} img/s`);
    console.log(`PEER peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
}

main().catch((e) => {
    console.error(`vit_forward_ort: ${e.message}`);
    process.exit(1);
});
