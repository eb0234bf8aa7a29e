import FakeTimers from '@sinonjs/fake-timers'
import t from 'tap'
import { createRateLimiter, forEachLimited } from '../src/concurrency.ts'

t.test('the write limit lets a burst through at once, then paces the rest at its rate, in order', async t => {
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
  t.teardown(() => clock.uninstall())
  const limiter = createRateLimiter(10, 5, () => Date.now())
  const start = Date.now()
  const granted: Array<[number, number]> = []
  const all = Promise.all(Array.from({ length: 25 }, (_, i) => limiter.acquire().then(() => { granted.push([i, Date.now() - start]) })))
  await clock.tickAsync(0)
  t.equal(granted.length, 5, 'the burst goes out at once')
  await clock.tickAsync(1000)
  t.equal(granted.length, 15, 'then 10 per second')
  await clock.tickAsync(1000)
  await all
  t.same(granted.map(([i]) => i), Array.from({ length: 25 }, (_, i) => i), 'callers are served in order')
  t.equal(granted.at(-1)![1], 2000, 'the 25th write waits (25 - 5) / 10 s')
  await clock.tickAsync(10_000)
  const after: number[] = []
  await Promise.all(Array.from({ length: 5 }, () => limiter.acquire().then(() => { after.push(Date.now()) })))
  t.equal(new Set(after).size, 1, 'an idle limiter refills its burst, never beyond it')
})

t.test('forEachLimited keeps at most `limit` in flight and reports the first failure after all settled', async t => {
  let inFlight = 0
  let most = 0
  const done: number[] = []
  const run = forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async n => {
    inFlight++
    most = Math.max(most, inFlight)
    await new Promise(resolve => setTimeout(resolve, 5))
    inFlight--
    if (n === 2) throw new Error('two failed')
    done.push(n)
  })
  await t.rejects(run, { message: 'two failed' })
  t.equal(most, 3)
  t.same(done.sort(), [1, 3, 4, 5, 6, 7], 'the others still ran')
})
