// possim lab: the page's state (scenario, policies, edits) lives in the URL's hash; every change
// re-runs the case on the server (/api/run) and replaces the runs. No words here: they come from
// the page (#lab-words) or from the server, in the reader's language.
(function () {
  'use strict';
  var words = JSON.parse(document.getElementById('lab-words').textContent);
  var lang = document.documentElement.lang.indexOf('zh') === 0 ? 'zh' : 'en';
  var $ = function (id) { return document.getElementById(id); };
  var state = {scenario: $('scenario').value, policies: [$('policy-a').value], edits: []};
  var rules = [];
  var previous = {};   // the money of the previous run, per column and row, to highlight what changed
  var steppers = [];
  var generation = 0;

  try {
    var saved = JSON.parse(decodeURIComponent(location.hash.slice(1)));
    if (saved && saved.scenario) { state = saved; }
  } catch (e) { /* no state in the URL: the defaults */ }

  function caseOf() {
    return {scenario: state.scenario, policies: state.policies, lang: lang, edits: state.edits};
  }

  function syncControls() {
    $('scenario').value = state.scenario;
    $('policy-a').value = state.policies[0];
    $('policy-b').value = state.policies[1] || '';
    var q = encodeURIComponent(JSON.stringify(caseOf()));
    $('save-toml').href = '/download/scenario.toml?case=' + q;
    $('save-html').href = '/download/report.html?case=' + q;
    history.replaceState(null, '', '#' + encodeURIComponent(JSON.stringify(state)));
  }

  function showError(text) {
    var box = $('error');
    box.textContent = text || '';
    box.hidden = !text;
  }

  function run() {
    syncControls();
    var mine = ++generation;
    document.body.classList.add('busy');
    fetch('/api/run', {method: 'POST', headers: {'Content-Type': 'application/json'},
                       body: JSON.stringify(caseOf())})
      .then(function (r) { return r.ok ? r.json() : r.text().then(function (t) { throw new Error(t); }); })
      .then(function (data) { if (mine === generation) { showError(''); draw(data); } })
      .catch(function (e) { if (mine === generation) { showError(String(e.message || e).trim()); } })
      .then(function () {
        if (mine !== generation) { return; }
        document.body.classList.remove('busy');
        document.body.setAttribute('data-done', String(mine));  // the latest run is on the page
      });
  }

  function draw(data) {
    rules = data.rules;
    var list = $('edit-list');
    if (data.edits.length) {
      list.innerHTML = '';
      data.edits.forEach(function (text) {
        var chip = document.createElement('span');
        chip.className = 'edit';
        chip.textContent = text;
        list.appendChild(chip);
      });
    } else {
      list.textContent = words.none;
    }
    $('story').innerHTML = data.story;  // the scenario's description, once for every policy shown
    var runs = $('runs');
    runs.innerHTML = '';
    steppers = [];
    if (data.fleet) {  // a fleet scenario: its own summary page, as possim run --report writes it
      var frame = document.createElement('iframe');
      frame.className = 'fleet';
      frame.setAttribute('sandbox', 'allow-scripts');
      frame.srcdoc = data.fleet;
      runs.appendChild(frame);
    }
    data.runs.forEach(function (r, i) {
      var col = document.createElement('section');
      col.className = 'run-col';
      col.id = 'col-' + i;
      col.setAttribute('data-policy', r.policy);
      col.innerHTML = '<h2 class="policy"></h2>' + r.point + r.chart +
        '<div class="more"><h2 class="h-verdict"></h2><div class="verdict">' + r.verdict + '</div>' +
        '<h2 class="h-ledger"></h2>' + r.ledger + '<h2 class="h-recon"></h2><div class="recon">' +
        r.reconciliation + '</div></div>';
      col.querySelector('h2.policy').textContent = r.heading;
      col.querySelector('.h-verdict').textContent = data.headings.verdict;
      col.querySelector('.h-ledger').textContent = data.headings.ledger;
      col.querySelector('.h-recon').textContent = data.headings.reconciliation;
      runs.appendChild(col);
      highlight(col, i);
      steppers.push(stepper(col));
      col.querySelectorAll('svg .arrow').forEach(function (g) {
        var hit = g.querySelector('line').cloneNode(false);  // a wide, invisible twin: easy to click
        ['marker-end', 'stroke-dasharray'].forEach(function (a) { hit.removeAttribute(a); });
        hit.setAttribute('stroke', 'transparent');
        hit.setAttribute('stroke-width', '16');
        hit.setAttribute('class', 'hit');
        g.appendChild(hit);
        g.addEventListener('click', function (ev) { ev.stopPropagation(); openMenu(g, ev); });
      });
    });
    if (document.body.classList.contains('present')) { fit(true); }  // a run redrawn while presenting
  }

  // Money and verdict rows whose value differs from the previous run of the same column.
  function highlight(col, i) {
    var now = {};
    col.querySelectorAll('.point .money tr, .verdict tr, .recon table:first-of-type tr').forEach(function (row, k) {
      var th = row.querySelector('th');
      var td = row.querySelector('td');
      if (!th || !td) { return; }
      var key = th.textContent;
      now[key] = td.textContent;
      var was = previous[i] && previous[i][key];
      if (was !== undefined && was !== td.textContent) {
        td.classList.add('changed');
        var note = document.createElement('span');
        note.className = 'was';
        note.textContent = words.was.replace('{value}', was);
        td.appendChild(note);
      }
    });
    previous[i] = now;
  }

  // Step through one column's chart: the report's own controls and steps, revealed one at a time.
  function stepper(col) {
    var steps = JSON.parse(col.querySelector('script.steps').textContent);
    var cap = col.querySelector('.caption');
    var self = {cur: steps.length - 1};
    function show() {
      col.querySelectorAll('[data-step]').forEach(function (el) {
        var s = parseInt(el.getAttribute('data-step'), 10);
        el.classList.toggle('future', s > self.cur);
        el.classList.toggle('current', s === self.cur);
      });
      var now = col.querySelector('g.current:not(.arrow):not(.timeout)');
      if (now && col.id === 'col-0' && document.body.classList.contains('present')) {
        now.scrollIntoView({block: 'center'});  // on a projector the step just revealed stays in sight
      }
      var st = steps[self.cur];
      cap.textContent = words.step.replace('{n}', self.cur + 1).replace('{total}', steps.length) +
        ' | t = ' + st.t + ' s | ' + st.lane + ': ' + st.text;
    }
    self.go = function (n) { self.cur = Math.max(0, Math.min(steps.length - 1, n)); show(); };
    self.last = function () { self.go(steps.length - 1); };
    col.querySelector('.first').addEventListener('click', function () { self.go(0); });
    col.querySelector('.prev').addEventListener('click', function () { self.go(self.cur - 1); });
    col.querySelector('.next').addEventListener('click', function () { self.go(self.cur + 1); });
    col.querySelector('.last').addEventListener('click', function () { self.last(); });
    show();
    return self;
  }

  function stepAll(how) {
    steppers.forEach(function (s) {
      if (how === 'next') { s.go(s.cur + 1); } else if (how === 'prev') { s.go(s.cur - 1); }
      else if (how === 'first') { s.go(0); } else { s.last(); }
    });
  }

  function ruleOn(id) {
    return rules.some(function (r) { return r.direction === id.direction && r.mti === id.mti && r.nth === id.nth; });
  }

  function openMenu(g, ev) {
    var id = {direction: g.getAttribute('data-direction'), mti: g.getAttribute('data-mti'),
              nth: parseInt(g.getAttribute('data-nth'), 10)};
    var menu = $('menu');
    menu.innerHTML = '';
    var head = document.createElement('b');
    head.textContent = id.mti + ' #' + id.nth;
    menu.appendChild(head);
    var actions = ruleOn(id) ? ['restore', 'drop', 'delay', 'duplicate'] : ['drop', 'delay', 'duplicate'];
    actions.concat(['cancel']).forEach(function (action) {
      var b = document.createElement('button');
      b.textContent = words[action === 'drop' ? 'lose' : action];
      b.setAttribute('data-action', action);
      b.addEventListener('click', function () {
        closeMenu();
        if (action === 'cancel') { return; }
        state.edits.push({action: action, direction: id.direction, mti: id.mti, nth: id.nth});
        run();
      });
      menu.appendChild(b);
    });
    menu.hidden = false;
    var x = Math.min(ev.pageX, window.scrollX + document.documentElement.clientWidth - 220);
    menu.style.left = Math.max(0, x) + 'px';
    menu.style.top = ev.pageY + 'px';
    menu.querySelector('button').focus();
  }

  function closeMenu() { $('menu').hidden = true; }

  // Presentation mode: each chart's picture cropped to the text it holds (the row times give way to the
  // caption's), so the same chart, laid out as the report lays it out, fills the screen in larger type.
  function fit(on) {
    document.querySelectorAll('#runs svg.msc').forEach(function (svg) {
      if (!svg.hasAttribute('data-box')) { svg.setAttribute('data-box', svg.getAttribute('viewBox')); }
      var box = svg.getAttribute('data-box').split(' ').map(Number);
      var lo = Infinity, hi = -Infinity;
      if (on) {
        svg.classList.add('measure');  // every label bold, as the current step's is: the widest it gets
        svg.querySelectorAll('text').forEach(function (t) {
          var b = t.getBBox();
          if (b.width && getComputedStyle(t).display !== 'none') { lo = Math.min(lo, b.x); hi = Math.max(hi, b.x + b.width); }
        });
        svg.classList.remove('measure');
      }
      var view = hi > lo ? [lo - 6, box[1], hi - lo + 12, box[3]] : box;
      svg.setAttribute('viewBox', view.join(' '));
    });
  }

  function present(on) {
    document.body.classList.toggle('present', on);
    fit(on);
    if (on) { stepAll('first'); }
  }

  $('scenario').addEventListener('change', function (e) {
    state = {scenario: e.target.value, policies: state.policies, edits: []};
    previous = {};
    run();
  });
  $('policy-a').addEventListener('change', function (e) { state.policies[0] = e.target.value; run(); });
  $('policy-b').addEventListener('change', function (e) {
    state.policies = e.target.value ? [state.policies[0], e.target.value] : [state.policies[0]];
    delete previous[1];
    run();
  });
  $('lang').addEventListener('change', function (e) {
    location.href = '/?lang=' + e.target.value + '#' + encodeURIComponent(JSON.stringify(state));
  });
  $('reset').addEventListener('click', function () { state.edits = []; run(); });
  $('present').addEventListener('click', function () { present(true); });
  document.addEventListener('click', function (e) { if (!$('menu').contains(e.target)) { closeMenu(); } });
  document.addEventListener('keydown', function (e) {
    var tag = (e.target && e.target.tagName) || '';
    if (tag === 'SELECT' || tag === 'INPUT' || (tag === 'BUTTON' && e.key === ' ')) { return; }
    var how = {ArrowRight: 'next', ' ': 'next', PageDown: 'next', ArrowLeft: 'prev', PageUp: 'prev',
               Home: 'first', End: 'last'}[e.key];
    if (how) { e.preventDefault(); stepAll(how); return; }
    if (e.key === 'p' || e.key === 'P') { present(!document.body.classList.contains('present')); }
    if (e.key === 'Escape') { closeMenu(); present(false); }
  });
  run();
})();
