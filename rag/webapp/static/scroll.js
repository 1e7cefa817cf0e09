() => {
  setTimeout(function () {
    const s = document.querySelector('#sources .src.selected');
    if (s) s.scrollIntoView({ block: 'nearest' });
    const c = document.querySelector('#fulldoc .fd-chunk.cited');
    if (c && c.offsetParent !== null) c.scrollIntoView({ block: 'center' });
  }, 120);
}
