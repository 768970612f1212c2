// Protobuf messages generated from proto/ (npm run gen). 64-bit fields are plain JS
// numbers: every ID is below 2^53 (API.md) and times are epoch ms, so Long objects would
// only cost allocations on the hot path.
import protobuf from 'protobufjs/minimal.js';
import { adclick } from '../gen/adclick.js';

protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

export const ClickEvent = adclick.v1.ClickEvent;
export const WindowAggregate = adclick.v1.WindowAggregate;
export const WatermarkProgress = adclick.v1.WatermarkProgress;
export const LateClick = adclick.v1.LateClick;
export const DeadLetter = adclick.v1.DeadLetter;
export const WindowAudit = adclick.v1.WindowAudit;
export const PartitionTick = adclick.v1.PartitionTick;
export type WindowAudit = adclick.v1.WindowAudit;
export const Granularity = adclick.v1.Granularity;
export type IClickEvent = adclick.v1.IClickEvent;
export type IWindowAggregate = adclick.v1.IWindowAggregate;
export type IWatermarkProgress = adclick.v1.IWatermarkProgress;
export type ILateClick = adclick.v1.ILateClick;
export type IDeadLetter = adclick.v1.IDeadLetter;
