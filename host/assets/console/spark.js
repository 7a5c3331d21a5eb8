// A small line chart of the last values of a series, drawn as SVG through the
// DOM (no inline style, so the page's CSP holds).

const SVG = 'http://www.w3.org/2000/svg';

/** A chart of the last `points` values, scaled to their maximum; push(v) adds one. */
export function sparkline(label, points = 120) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${points} 40`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('class', 'spark');
  const line = document.createElementNS(SVG, 'polyline');
  svg.append(line);
  const values = [];
  return {
    node: svg,
    push(v) {
      values.push(v);
      if (values.length > points) values.shift();
      const max = Math.max(1, ...values);
      line.setAttribute('points', values.map((x, i) => `${i + points - values.length},${38 - (x / max) * 36}`).join(' '));
    },
  };
}
