// The advertiser's campaigns with their clicks in the chosen range and all time, from ONE
// request per refresh: GET /v1/campaigns with from/to/granularity (an additive extension of
// API.md, see the README) carries each campaign's clicks over exactly the range and
// granularity the chart uses, so the list and the chart's total agree. One series per
// campaign, as before, cost one request per campaign every refresh and ran into the
// per-key rate limit past ~100 campaigns.
import { byId, setAttr, setText, show, syncRows } from './dom.js';
import { formatCount } from './format.js';

export async function loadCampaigns(api, range, signal) {
  let body;
  try {
    body = await api.campaignsInRange(range, signal);
  } catch (err) {
    // A refused range (say a server configured with a lower window cap) must not hide the
    // list: it falls back to the all-time totals, with "–" in the range column.
    if (err.kind !== 'bad-request') throw err;
    body = await api.campaigns(signal);
  }
  return {
    from: body.from ?? null,
    to: body.to ?? null,
    completeBefore: body.complete_before ?? null,
    rows: body.campaigns.map((c) => ({
      campaignId: c.campaign_id,
      totalClicks: c.total_clicks,
      // Absent when the answer has no range (the fallback above): shown as unknown, not 0.
      rangeClicks: typeof c.clicks === 'number' ? c.clicks : null,
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
