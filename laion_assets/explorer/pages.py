"""The explorer's two HTML pages: search (grid, filters, detail panel, removal request) and the
audit view (exclusions by rule). Plain HTML and a little JavaScript, no build step; every
value from the data is escaped (`html.escape` here, `textContent` in the script)."""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from laion_assets.explorer.app import Explorer

NEVER_SHOWN_RULES = ("hash_list",)  # their images are never listed nor served
BLURRED_RULES = ("nsfw", "nsfw_keyword", "minor_nsfw")

STYLE = """
body{font-family:sans-serif;margin:1em;background:#fafafa}
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.5em;margin:.5em 0}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.cell{width:170px;background:#fff;border:1px solid #ddd;padding:4px;font-size:12px;cursor:pointer;
 overflow-wrap:anywhere}
.cell img,.noimage{width:160px;height:120px;object-fit:cover;background:#eee}
.noimage{display:flex;align-items:center;justify-content:center;color:#777}
#detail img{max-width:320px;max-height:240px}
.cell button{font-size:11px}
.blur{filter:blur(16px)}
form label{margin-right:.8em;font-size:13px}
#detail{font-size:13px;background:#fff;border:1px solid #ccc;padding:.5em}
#detail pre{white-space:pre-wrap;font-size:11px;max-height:30em;overflow:auto}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #ccc;padding:2px 6px;
 font-size:13px;text-align:left}
.refused{color:#a00}.done{color:#060}
"""


def banner(ex: Explorer) -> str:
    """The model the embeddings come from; with untrained CLIP, that search means nothing."""
    text = f"Model: {html.escape(ex.model_label())}."
    if ex.untrained:
        text += (" These embeddings come from an <b>untrained CLIP model</b> (seeded random "
                 "weights, the offline demo): search results are <b>not meaningful</b>.")
    return f'<div class="banner" id="model">{text}</div>'


def _filters(ex: Explorer) -> str:
    return f"""<form id="search"><input name="q" id="q" size="40" placeholder="search by text">
<button>Search</button>
<label>or by image <input type="file" id="image" accept="image/*"></label><br>
<label><input type="checkbox" id="safe" checked> safe mode (hide punsafe &gt;
{ex.punsafe_threshold})</label>
<label>language <input id="language" size="4" placeholder="any"></label>
<label>punsafe &le; <input id="max_punsafe" size="5" placeholder="any"></label>
<label>pwatermark &le; <input id="max_pwatermark" size="5" placeholder="any"></label>
<label>similarity &ge; <input id="min_similarity" size="5" placeholder="any"></label>
<label>results <input id="k" size="3" value="24"></label>
</form><p id="status"></p>"""


def _removal_form(ex: Explorer) -> str:
    if not ex.operator_token:
        return ('<p id="removal-readonly">Read-only explorer: removal requests need a server '
                "started with an operator token (--operator-token).</p>")
    return """<form id="removal"><b>Request removal</b> of this image URL (a takedown ledger
entry; the takedown sensor does the rest):<br>
<label>operator token <input type="password" id="token" autocomplete="off"></label>
<label>reason <input id="reason" size="30"></label><button>Request removal</button></form>
<p id="removal-status"></p>"""


HOME_SCRIPT = """
const grid=document.getElementById('grid'), detail=document.getElementById('detail');
const statusLine=document.getElementById('status'), form=document.getElementById('search');
const el=(tag,text)=>{const e=document.createElement(tag); if(text!==undefined)
  e.textContent=String(text); return e;};
function table(id, pairs){
  const t=el('table'); t.id=id;
  for(const [k,v] of pairs){const tr=el('tr'), th=el('th',k), td=el('td');
    if(v instanceof Node) td.append(v); else td.textContent=v===null||v===undefined?'':v;
    td.dataset.field=k; tr.append(th,td); t.append(tr);}
  return t;
}
function runLink(id){
  if(!id) return '';
  if(!DAGSTER) return id;
  const a=el('a',id); a.href=DAGSTER+'/runs/'+id; a.target='_blank'; return a;
}
async function search(params, image){
  for(const f of ['language','max_punsafe','max_pwatermark','min_similarity','k']){
    const v=document.getElementById(f).value.trim(); if(v) params.set(f,v);}
  params.set('safe', document.getElementById('safe').checked?1:0);
  const r=await fetch('/api/search?'+params, image?{method:'POST', body:image}:{});
  const body=await r.json(); grid.innerHTML='';
  if(!r.ok){statusLine.textContent=body.error; return;}
  statusLine.textContent=body.results.length+' results'+(body.untrained?
    ' (untrained CLIP: not meaningful)':'');
  for(const row of body.results){
    const d=el('div'); d.className='cell result'; d.dataset.key=row.key;
    d.dataset.row=row.row; d.dataset.language=row.LANGUAGE;
    const img=el('img'); img.alt=''; img.src='/image/'+row.shard.replace('/','~')+'/'+row.key;
    const t=el('div', row.TEXT);
    const s=el('div', 'sim '+row.score.toFixed(3)+' | punsafe '+Number(row.punsafe).toFixed(3)+
      ' | wm '+Number(row.pwatermark).toFixed(3)+' | '+row.LANGUAGE+' | '+row.WIDTH+'x'+
      row.HEIGHT);
    const more=el('button','more like this'); more.className='more';
    more.onclick=e=>{e.stopPropagation(); search(new URLSearchParams({like: row.row}));};
    d.append(img,t,s,more); d.onclick=()=>showDetail(row); grid.append(d);
  }
}
document.getElementById('image').onchange=e=>{
  if(e.target.files.length) search(new URLSearchParams(), e.target.files[0]);};
form.onsubmit=e=>{e.preventDefault();
  search(new URLSearchParams({q: document.getElementById('q').value}));};
async function showDetail(row){
  const r=await fetch('/api/trace?hash='+row.hash), body=await r.json();
  detail.innerHTML='';
  if(!r.ok){detail.textContent=body.error; return;}
  const rec=body[0], w=rec.warc||{}, f=rec.fetch||{}, s=rec.scores||{};
  const img=el('img'); img.alt=''; img.src='/image/'+row.shard.replace('/','~')+'/'+row.key;
  detail.append(img, el('h4', rec.text), el('div', rec.url));
  detail.append(el('h4','WARC record'), table('detail-warc', [['warc_file',w.warc_file],
    ['warc_record_offset',w.warc_record_offset], ['warc_record_id',w.warc_record_id],
    ['capture_time',w.capture_time], ['page_url',w.page_url], ['shard',rec.shard]]));
  detail.append(el('h4','Fetch'), table('detail-fetch', [['status',f.status],
    ['source',f.source], ['http_status',f.http_status], ['content_type',f.content_type],
    ['bytes',f.bytes], ['size',f.width+'x'+f.height], ['sha256',f.sha256]]));
  detail.append(el('h4','Scores and decision'), table('detail-scores', [
    ['similarity',s.similarity], ['punsafe',s.punsafe], ['pwatermark',s.pwatermark],
    ['decision',rec.decision], ['rules',(rec.rules||[]).join(', ')]]));
  detail.append(el('h4','Runs'), table('detail-runs', Object.entries(rec.runs||{}).map(
    ([stage,run])=>[stage, runLink(run.run_id)])));
  detail.append(el('h4','Releases'), table('detail-releases', (rec.releases||[]).map(
    v=>[v.name+' v'+v.version, v.status+' (part '+v.part+', row '+v.row+')'])));
  const removal=document.getElementById('removal-template').content.cloneNode(true);
  detail.append(removal);
  const rf=document.getElementById('removal');
  if(rf) rf.onsubmit=e=>{e.preventDefault(); requestRemoval(row);};
  const raw=el('details'); raw.append(el('summary','provenance JSON'),
    el('pre', JSON.stringify(body,null,1))); detail.append(raw);
}
async function requestRemoval(row){
  const out=document.getElementById('removal-status');
  const token=document.getElementById('token').value;
  const headers={'Content-Type':'application/json'};
  if(token) headers['Authorization']='Bearer '+token;
  const r=await fetch('/api/removal',{method:'POST',headers,body:JSON.stringify({kind:'url',
    value:row.URL, reason:document.getElementById('reason').value,
    requested_by:'explorer page'})});
  const body=await r.json();
  out.className=r.ok?'done':'refused';
  out.textContent=r.ok?'Takedown '+body.id+' written to '+body.ledger_file:
    'Refused: '+body.error;
}
"""


def other_release(ex: Explorer, requested: str | None) -> str:
    """A notice when a link asked for another release version than the one served."""
    from laion_assets.explorer.app import parse_release  # app imports this module

    if not requested:
        return ""
    try:
        name, version = parse_release(requested)
    except ValueError as exc:
        return f'<div class="banner" id="other-release">{html.escape(str(exc))}</div>'
    if name == ex.name and version in (None, ex.version):
        return ""
    wanted = f"{name}@v{version}" if version else name
    return (f'<div class="banner" id="other-release">The link asked for '
            f"<b>{html.escape(wanted)}</b>; this explorer serves {html.escape(ex.name)} "
            f"v{ex.version}. Start <code>laion-assets explore --release "
            f"{html.escape(wanted)}</code> to see it.</div>")


def home_page(ex: Explorer, requested: str | None = None) -> str:
    title = f"{html.escape(ex.name)} v{ex.version}"
    dagster = json.dumps(ex.dagster_url or "").replace("<", "\\u003c")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}: explorer</title>
<style>{STYLE}</style></head><body>
<h1>{title} <small>({ex.release.rows} rows)</small></h1>
<p><a href="/audit">Audit: exclusions by rule</a></p>
{other_release(ex, requested)}
{banner(ex)}
{_filters(ex)}
<div class="grid" id="grid"></div>
<h3>Detail</h3><div id="detail">click a result for its provenance</div>
<template id="removal-template">{_removal_form(ex)}</template>
<script>const DAGSTER={dagster};{HOME_SCRIPT}</script></body></html>"""


def _excluded_cell(ex: Explorer, e: dict, rule: str) -> str:
    cls = "blur" if rule in BLURRED_RULES else ""
    src = f"/image/{e['shard'].replace('/', '~')}/{e['key']}"
    image = (f'<img class="{cls}" src="{html.escape(src)}" alt="" '
             "onclick=\"this.classList.remove('blur')\">"
             if ex.has_image(e["shard"], e["key"]) else '<div class="noimage">no image</div>')
    return (f'<div class="cell excluded" data-rule="{html.escape(rule)}" '
            f'data-key="{html.escape(e["key"])}">{image}'
            f"<div>{html.escape(e['text'] or '')}</div>"
            f'<div class="reason"><i>{html.escape(e["detail"] or "")}</i></div>'
            f"<div>{html.escape(e['url'])}</div></div>")


def audit_page(ex: Explorer, only: str | None, shard: str | None = None) -> str:
    grouped = ex.exclusions_by_rule(shard)
    counts = ex.rule_counts(shard)
    where = f"?shard={html.escape(shard)}&amp;" if shard else "?"
    rows = "".join(f'<tr><td><a href="/audit{where}rule={html.escape(r)}">{html.escape(r)}'
                   f"</a></td><td>{n}</td></tr>" for r, n in counts.most_common())
    sections = []
    for rule, items in sorted(grouped.items()):
        if only and rule != only:
            continue
        head = f'<h2 id="rule-{html.escape(rule)}">{html.escape(rule)} ({counts[rule]})</h2>'
        if rule in NEVER_SHOWN_RULES:
            sections.append(f"{head}<p>Matched by a hash list: never shown, and not served.</p>")
            continue
        cells = "".join(_excluded_cell(ex, e, rule) for e in items)
        sections.append(f'{head}<div class="grid">{cells}</div>')
    scope = f" (shard {html.escape(shard)})" if shard else ""
    notice = ""
    if shard and shard not in {s.shard for s in ex.release.source_shards}:
        notice = (f'<p class="banner" id="not-a-source">Shard {html.escape(shard)} is not a '
                  "source of this version: its exclusions show in the explorer of a version "
                  "that holds it.</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(ex.name)} v{ex.version}: audit</title><style>{STYLE}</style></head><body>
<h1>Exclusions in the source shards of {html.escape(ex.name)} v{ex.version}{scope}</h1>
{notice}
<p><a href="/">search</a>. Images excluded for NSFW are blurred until clicked; images matched
by a hash list are never shown.</p>
<table><tr><th>rule</th><th>pairs</th></tr>{rows}</table>{"".join(sections)}</body></html>"""
