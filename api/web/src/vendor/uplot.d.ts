// Types of /ui/vendor/uplot.js, which the API serves from node_modules/uplot/dist/uPlot.esm.js.
import uPlot from 'uplot';
export default uPlot;
