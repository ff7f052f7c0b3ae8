// A typed pull: compiled by the test suite with `tsc --noEmit --strict`.
import {
  GlobalCache,
  Platform,
  Registry,
  parseReference,
  type DiskUsage,
  type GcReport,
  type MsbimageError,
  type PullProgress,
  type RegistryOptions,
  type Stat,
} from 'msbimage'

function describe(event: PullProgress): string {
  switch (event.type) {
    case 'resolved':
      return `${event.layerCount} layers, ${event.totalDownloadBytes} bytes to fetch`
    case 'layerDownloadProgress':
      return `layer ${event.layerIndex}: ${event.downloadedBytes}/${event.totalBytes ?? '?'}`
    case 'layerExtractComplete':
      return `layer ${event.layerIndex} (${event.diffId}): ${event.entries} entries`
    case 'complete':
      return `done${event.cached ? ' (cached)' : ''}`
    default:
      return event.type
  }
}

export async function main(cacheDir: string, reference: string): Promise<number> {
  const options: RegistryOptions = { insecureRegistries: ['localhost:5000'], concurrency: 2, connectTimeout: 5 }
  const registry = new Registry(Platform.hostLinux(), new GlobalCache(cacheDir), options)
  const controller = new AbortController()
  try {
    const result = await registry.pull(reference, {
      policy: 'if-missing',
      buildIndex: true,
      signal: controller.signal,
      onProgress: (event) => console.log(describe(event)),
    })
    const name: string = parseReference(reference).repository
    const entrypoint: string[] | undefined = result.config.entrypoint ?? undefined
    console.log(name, result.manifestDigest, result.layers.length, entrypoint)
    const stack = result.layerStack()
    const hosts: Stat = stack.stat('/etc/hosts')
    for (const entry of stack.readDir('/etc')) console.log(entry.name, entry.stat.kind === 'symlink')
    for (const { path, stat } of stack.walk()) if (stat.size > 1 << 20) console.log(path)
    const caps: Buffer | undefined = stack.xattrs('/usr/bin/ping')['security.capability']
    console.log(hosts.mode.toString(8), caps?.length)
    for await (const event of registry.pullEvents(reference, { policy: 'never' })) console.log(describe(event))
    const cache = new GlobalCache(cacheDir)
    const lease = await cache.holdLayer(result.layerDiffIds[0])
    const usage: DiskUsage = await cache.diskUsage()
    for (const image of usage.images) console.log(image.names.join(','), image.exclusiveBytes, image.sharedBytes)
    const report: GcReport = await cache.gc({ dryRun: true, maxSize: 10e9, keepRecent: 86_400 })
    console.log(report.removedImages.map((i) => i.names), report.inUseLayers, lease.diffId)
    lease.release()
    return 0
  } catch (e) {
    const error = e as MsbimageError
    if (error.name === 'AbortError') return 130
    console.error(error.code, error.image, error.layer, error.message)
    return error.code === 'NOT_CACHED' ? 3 : 1
  }
}
