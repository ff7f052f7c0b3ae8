#!/usr/bin/env node
// Cold and warm pull times of one image through Node and through the Rust CLI, in the same
// run, alternating (node, cli, node, cli, …), from a loopback registry. A cold pull goes into a
// fresh cache; a warm pull repeats it into the filled cache. Both are timed as whole processes
// (start-up included) and, for Node, also inside the process (the `await registry.pull` alone).
//
//   node scripts/bench.js [--rounds N] [--cli PATH] [--image fixtures|big] [--no-durable]
// The addon is whatever `npm run build` (release) or `build:debug` last built; pass the CLI of
// the same profile (target/release/msbimage or target/debug/msbimage).
'use strict'

const { execFile } = require('node:child_process')
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
// --no-durable: both skip the syncfs before publishing (less noise from other I/O on the machine).
const settings = args.includes('--no-durable') ? { durable: false } : {}

const pullScript = `
  const { GlobalCache, Platform, Registry } = require(${JSON.stringify(h.pkg)})
  const t0 = process.hrtime.bigint()
  new Registry(Platform.hostLinux(), new GlobalCache(process.argv[1]), JSON.parse(process.argv[3]))
    .pull(process.argv[2])
    .then((r) => console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, cached: r.cached })))
`

// Asynchronous: the crafted registry serves from this process's event loop.
function timed(cmd, argv) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    execFile(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 24 }, (error, stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      if (error) reject(new Error(`${cmd} ${argv.join(' ')}: ${stderr || error.message}`))
      else resolve({ ms, out: stdout })
    })
  })
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
  const configFile = path.join(base, 'settings.json')
  fs.writeFileSync(configFile, JSON.stringify(settings))
  const times = { node: { cold: [], warm: [], coldIn: [], warmIn: [] }, cli: { cold: [], warm: [] } }
  try {
    for (let i = 0; i < rounds; i++) {
      for (const who of i % 2 ? ['cli', 'node'] : ['node', 'cli']) {
        const cache = path.join(base, `${who}-${i}`)
        for (const kind of ['cold', 'warm']) {
          if (who === 'node') {
            const { ms, out } = await timed(process.execPath, ['-e', pullScript, cache, ref, JSON.stringify(settings)])
            const inner = JSON.parse(out)
            if (inner.cached !== (kind === 'warm')) throw new Error(`node ${kind} pull: cached=${inner.cached}`)
            times.node[kind].push(ms)
            times.node[`${kind}In`].push(inner.ms)
          } else {
            const { ms, out } = await timed(cli, ['pull', ref, '--cache', cache, '--config', configFile, '--json', '--progress', 'none'])
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
  console.log(`image ${ref}, settings ${JSON.stringify(settings)}, ${rounds} rounds, alternating, medians:`)
  console.log(`  cold  node process ${fmt(times.node.cold)}  | in process ${fmt(times.node.coldIn)}  | cli process ${fmt(times.cli.cold)}`)
  console.log(`  warm  node process ${fmt(times.node.warm)}  | in process ${fmt(times.node.warmIn)}  | cli process ${fmt(times.cli.warm)}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
