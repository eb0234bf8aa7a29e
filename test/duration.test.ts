import t from 'tap'
import { formatDuration, parseDuration } from '../src/duration.ts'

t.test('durations as operators write them', async t => {
  t.equal(parseDuration('30m'), 1_800_000)
  t.equal(parseDuration('1h30m'), 5_400_000)
  t.equal(parseDuration('250ms'), 250)
  t.equal(parseDuration('1d'), 86_400_000)
  t.equal(parseDuration('0'), 0)
  for (const bad of ['', '30', 'm', '5 m', '1.5h', '-1m', '30min']) t.equal(parseDuration(bad), undefined, bad)
  t.equal(formatDuration(5_400_000), '1h30m')
  t.equal(formatDuration(1500), '1500ms')
})
