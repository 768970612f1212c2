// The advertiser's campaigns with their clicks in the chosen range and all time.
// GET /v1/campaigns gives all-time totals only, so the range totals come from each
// campaign's series over exactly the range the chart uses (same numbers as its total).
import { byId, setAttr, setText, show, syncRows } from './dom.js';
import { formatCount } from './format.js';

const CONCURRENCY = 4;

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * @param known totals already fetched for this refresh (campaign id → series answer),
 *   so the selected campaign's series is not fetched twice.
 */
export async function loadCampaigns(api, range, signal, known) {
  const { campaigns } = await api.campaigns(signal);
  const series = await mapLimit(campaigns, CONCURRENCY, async (c) => {
    const have = await known(c.campaign_id);
    if (have) return have;
    try {
      return await api.campaignSeries(c.campaign_id, range, signal);
    } catch (err) {
      // One campaign's trouble (say a malformed range) must not hide the others.
      if (err.kind === 'not-found' || err.kind === 'bad-request') return null;
      throw err;
    }
  });
  const answered = series.find(Boolean);
  return {
    from: answered ? answered.from : null,
    to: answered ? answered.to : null,
    completeBefore: answered ? answered.complete_before : null,
    rows: campaigns.map((c, i) => ({
      campaignId: c.campaign_id,
      totalClicks: c.total_clicks,
      rangeClicks: series[i] ? series[i].total_clicks : null,
    })),
  };
}

export function renderCampaigns(list, { range, selectedId, hrefOf }) {
  const table = byId('campaigns');
  setAttr(table, 'data-from', list.from);
  setAttr(table, 'data-to', list.to);
  setAttr(table, 'data-granularity', range.granularity);
  setAttr(table, 'data-count', list.rows.length);
  syncRows(
    table.tBodies[0],
    list.rows,
    (r) => r.campaignId,
    () => {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      const a = document.createElement('a');
      name.append(a);
      tr.append(name, document.createElement('td'), document.createElement('td'));
      return tr;
    },
    (tr, r) => {
      setAttr(tr, 'data-campaign-id', r.campaignId);
      setAttr(tr, 'data-total-clicks', r.totalClicks);
      setAttr(tr, 'data-range-clicks', r.rangeClicks);
      setAttr(tr, 'aria-current', r.campaignId === selectedId ? 'true' : null);
      const a = tr.cells[0].firstElementChild;
      setText(a, `Campaign ${r.campaignId}`);
      setAttr(a, 'href', hrefOf(r.campaignId));
      setAttr(a, 'data-nav-campaign', r.campaignId);
      setText(tr.cells[1], r.rangeClicks === null ? '–' : formatCount(r.rangeClicks));
      setText(tr.cells[2], formatCount(r.totalClicks));
    },
  );
  show(byId('campaigns-empty'), list.rows.length === 0);
  show(table, list.rows.length > 0);
}

export function clearCampaigns() {
  byId('campaigns').tBodies[0].replaceChildren();
}
