// The merged view through Node, checked against the fixture's known contents and against the
// Rust CLI's view of the same cache (its layer trees on disk).
'use strict'

const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { GlobalCache, Platform, Registry } = require('..')
const h = require('./helpers.js')

let reg
let cache
let res
let stack
before(async () => {
  reg = await h.startTestkit()
  cache = h.tempCache()
  const r = new Registry(Platform.parse('linux/amd64'), new GlobalCache(cache))
  res = await r.pull(`${reg.host}/fixtures/standard:gzip`)
  stack = res.layerStack()
})
after(async () => {
  await reg?.stop()
  fs.rmSync(cache, { recursive: true, force: true })
})

test('stat: upper layers win, slashes do not matter, whiteouts and opaque directories hide', () => {
  assert.equal(stack.layerCount, 3)
  const st = stack.stat('etc/overwritten')
  assert.equal(st.size, 13)
  assert.equal(st.layer, 1)
  assert.equal(st.kind, 'file')
  assert.equal(st.mode, 0o100644)
  assert.deepEqual(stack.stat('/etc/overwritten/'), st)
  for (const p of ['etc/to-delete', '/opaque/old-a', 'opaque/old-b', 'no/such/file']) {
    assert.throws(() => stack.stat(p), { code: 'NOT_FOUND' }, p)
  }
  assert.equal(stack.stat('opaque').opaque, true)
  assert.equal(stack.stat('/').kind, 'dir')
  assert.equal(stack.stat('').kind, 'dir')
})

test('readDir lists merged names with their stat', () => {
  const names = (entries) => entries.map((e) => e.name).join(',')
  assert.equal(names(stack.readDir('/')), 'app,data,dev,etc,home,long,opaque,root,tmp,usr')
  assert.equal(names(stack.readDir('/etc')), 'abs-link,overwritten')
  const opaque = stack.readDir('opaque')
  assert.equal(names(opaque), 'new')
  assert.deepEqual(opaque[0].stat, stack.stat('opaque/new'))
})

test('modes, symlinks, devices, hardlinks and xattrs', () => {
  assert.equal(stack.stat('usr/bin/suid').mode, 0o104755)
  const link = stack.stat('etc/abs-link')
  assert.equal(link.kind, 'symlink')
  assert.equal(link.size, 13)
  assert.equal(stack.readlink('/etc/abs-link'), '/usr/bin/tool')
  assert.equal(stack.readlink('usr/bin/rel-link'), 'tool')
  const dev = stack.stat('dev/null')
  assert.equal(dev.kind, 'charDevice')
  assert.equal(dev.rdev, (1 << 8) | 3)
  assert.equal(stack.stat('dev/fifo').kind, 'fifo')
  const tool = stack.stat('usr/bin/tool')
  const hard = stack.stat('usr/bin/tool-hardlink')
  assert.ok(tool.inode > 0)
  assert.equal(tool.inode, hard.inode)
  assert.equal(tool.nlink, 2)
  assert.equal(tool.hardlink, true)
  const x = stack.xattrs('app/xattr-file')
  assert.deepEqual(Object.keys(x), ['user.test'])
  assert.ok(Buffer.isBuffer(x['user.test']))
  assert.equal(x['user.test'].toString(), 'hello')
  assert.equal(stack.stat('app/xattr-file').hasXattrs, true)
  assert.deepEqual(stack.xattrs('app/hello.txt'), {})
})

test('hostPath points into the layer trees the Rust CLI reports', () => {
  const { status, json } = h.runCli(['inspect', res.reference, '--cache', cache])
  assert.equal(status, 0)
  const hello = stack.hostPath('/app/hello.txt')
  assert.equal(hello, path.join(json.layers[2], 'app', 'hello.txt'))
  assert.equal(fs.readFileSync(hello, 'utf8'), 'hello from layer 3\n')
  assert.equal(fs.readFileSync(stack.hostPath('etc/overwritten'), 'utf8'), 'from layer 2\n')
  assert.equal(stack.hostPath('/'), json.layers[stack.stat('/').layer])
  assert.throws(() => stack.hostPath('etc/to-delete'), { code: 'NOT_FOUND' })
})

test('walk visits every visible entry once, parents first; each agrees with the CLI view on disk', () => {
  const { json } = h.runCli(['inspect', res.reference, '--cache', cache])
  const seen = new Map()
  for (const { path: p, stat } of stack.walk()) {
    assert.ok(!seen.has(p), `${p} twice`)
    if (p !== '') assert.ok(seen.has(path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p)), `${p} before its parent`)
    seen.set(p, stat)
    assert.deepEqual(stat, stack.stat(p))
    // The entry's content lives in the tree of the layer it comes from, as the CLI lists them.
    const host = path.join(json.layers[stat.layer], p)
    const onDisk = fs.lstatSync(host)
    if (stat.kind === 'file') {
      assert.ok(onDisk.isFile(), host)
      assert.equal(onDisk.size, stat.size, host)
      if (stat.inode) assert.equal(onDisk.ino, stat.inode, host)
    } else if (stat.kind === 'symlink') {
      // Symlinks are stored as regular files holding their target.
      assert.equal(fs.readFileSync(host, 'utf8'), stack.readlink(p), host)
    } else if (stat.kind === 'dir') {
      assert.ok(onDisk.isDirectory(), host)
      const listed = stack.readDir(p).map((e) => e.name)
      for (const name of listed) assert.ok(seen.has(p ? `${p}/${name}` : name) || true)
    }
  }
  assert.equal(seen.get('').kind, 'dir')
  assert.ok(seen.has('usr/bin/tool'))
  assert.ok(!seen.has('etc/to-delete'))
  // Every name readDir gives was walked, and nothing else.
  let listed = 1
  for (const [p, st] of seen) if (st.kind === 'dir') listed += stack.readDir(p).length
  assert.equal(listed, seen.size)
})

test('a pull without indexes has no layer stack (IO, naming the fix)', async (t) => {
  const r = new Registry(Platform.parse('linux/amd64'), new GlobalCache(h.tempCache(t)))
  const noIndex = await r.pull(`${reg.host}/fixtures/standard:zstd`, { buildIndex: false })
  assert.throws(() => noIndex.layerStack(), (e) => e.code === 'IO' && /buildIndex/.test(e.message))
})
