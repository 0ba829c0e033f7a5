"""trademesh execution: Execution: places approved orders on paper or live venues, tracks their lifecycle, fills, positions and PnL."""
