import t from 'tap'
import { parseQuantity } from '../src/quantity.ts'

t.test('Kubernetes quantities in base units', async t => {
  const cases: Array<[string | undefined, number]> = [['500m', 0.5], ['2', 2], ['1.5', 1.5], ['1Gi', 2 ** 30], ['1.5Gi', 1.5 * 2 ** 30], ['128974848', 128974848], ['129e6', 129e6], ['123M', 123e6], ['100Ki', 102400], [undefined, 0], ['', 0]]
  for (const [text, value] of cases) t.equal(parseQuantity(text), value, String(text))
  t.ok(Number.isNaN(parseQuantity('lots')), 'unreadable is NaN, never a guess')
})
