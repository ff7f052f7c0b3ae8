#!/usr/bin/env node
// Cold and warm pull times of one image through Node and through the Rust CLI, in the same
// run, alternating (node, cli, node, cli, …), from a loopback registry. A cold pull goes into a
// fresh cache; a warm pull repeats it into the filled cache. Both are timed as whole processes
// (start-up included) and, for Node, also inside the process (the `await registry.pull` alone).
//
//   node scripts/bench.js [--rounds N] [--cli PATH] [--image fixtures|big]
// The addon is whatever `npm run build` (release) or `build:debug` last built; pass the CLI of
// the same profile (target/release/msbimage or target/debug/msbimage).
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const h = require('../test/helpers.js')

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const rounds = Number(opt('--rounds', '5'))
const cli = opt('--cli', h.cli)
const which = opt('--image', 'big')

const pullScript = `
  const { GlobalCache, Platform, Registry } = require(${JSON.stringify(h.pkg)})
  const t0 = process.hrtime.bigint()
  new Registry(Platform.hostLinux(), new GlobalCache(process.argv[1]))
    .pull(process.argv[2])
    .then((r) => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, cached: r.cached })))
`

function timed(cmd, argv) {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(cmd, argv, { encoding: 'utf8' })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`)
  return { ms, out: r.stdout }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

async function main() {
  let ref
  let stop
  if (which === 'fixtures') {
    const reg = await h.startTestkit()
    ref = `${reg.host}/fixtures/standard:gzip`
    stop = reg.stop
  } else {
    // Four layers: 2,000 small files each plus 4 MiB of incompressible data.
    const layers = [1, 2, 3, 4].map((seed) =>
      h.tar([
        { name: `d${seed}`, type: '5' },
        ...Array.from({ length: 2000 }, (_, i) => ({ name: `d${seed}/f${i}`, data: `file ${seed}/${i}\n`.repeat(20) })),
        { name: `d${seed}/noise`, data: h.noise(4 << 20, seed) },
      ]),
    )
    const reg = await h.craftedRegistry({ 'bench/image': h.image(layers) })
    ref = `${reg.host}/bench/image:latest`
    stop = reg.close
  }
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'msbimage-bench-'))
  const times = { node: { cold: [], warm: [], coldIn: [], warmIn: [] }, cli: { cold: [], warm: [] } }
  try {
    for (let i = 0; i < rounds; i++) {
      for (const who of i % 2 ? ['cli', 'node'] : ['node', 'cli']) {
        const cache = path.join(base, `${who}-${i}`)
        for (const kind of ['cold', 'warm']) {
          if (who === 'node') {
            const { ms, out } = timed(process.execPath, ['-e', pullScript, cache, ref])
            const inner = JSON.parse(out)
            if (inner.cached !== (kind === 'warm')) throw new Error(`node ${kind} pull: cached=${inner.cached}`)
            times.node[kind].push(ms)
            times.node[`${kind}In`].push(inner.ms)
          } else {
            const { ms, out } = timed(cli, ['pull', ref, '--cache', cache, '--json', '--progress', 'none'])
            if (JSON.parse(out).cached !== (kind === 'warm')) throw new Error(`cli ${kind} pull`)
            times.cli[kind].push(ms)
          }
        }
        fs.rmSync(cache, { recursive: true, force: true })
      }
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true })
    await stop()
  }
  const fmt = (xs) => `${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`
  console.log(`image ${ref}, ${rounds} rounds, alternating, medians:`)
  console.log(`  cold  node process ${fmt(times.node.cold)}  | in process ${fmt(times.node.coldIn)}  | cli process ${fmt(times.cli.cold)}`)
  console.log(`  warm  node process ${fmt(times.node.warm)}  | in process ${fmt(times.node.warmIn)}  | cli process ${fmt(times.cli.warm)}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
